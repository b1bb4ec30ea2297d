"""Frequency response on the wire: measurements and programs in, activations and
flexibility out (docs/frequency.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from evgrid.core.frequency.program import FrequencyProgram, program_problems
from evgrid.models.fields import Identifier, Timestamp
from evgrid.timeutil import from_epoch

_INPUT = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)
_OUTPUT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

#: A measurement outside this range is a broken meter, not a grid event.
Hz = Annotated[float, Field(ge=40.0, le=70.0, allow_inf_nan=False)]


class FrequencyMeasurement(BaseModel):
    """One measurement (`grid.frequency`, key `area_id`), from a PMU, a site meter or a TSO
    feed, at up to 50 Hz per source."""

    model_config = _INPUT

    area_id: Identifier
    frequency_hz: Hz
    ts: Timestamp
    source: Identifier


class FrequencyProgramRecord(BaseModel):
    """What a zone offers (`config.frequency_programs`, key `zone_id`, compacted). A program
    the core finds impossible is refused whole, with every reason. Unknown fields are refused
    too: a misspelt `dead_band_hz` must not leave the deadband silently at 0."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    zone_id: Identifier
    area_id: Identifier
    product: Literal["linear", "step"]
    committed_kw: float = Field(gt=0, allow_inf_nan=False)
    start_hz: Hz | None = None
    full_hz: Hz | None = None
    trigger_hz: Hz | None = None
    deadband_hz: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    full_activation_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    half_activation_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    min_hold_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    recovery_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    restore_spread_s: float = Field(default=300.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _possible(self) -> FrequencyProgramRecord:
        problems = program_problems(self.program())
        if problems:
            raise PydanticCustomError("impossible_program", "impossible program: {problems}",
                                      {"problems": "; ".join(problems)})
        return self

    def program(self) -> FrequencyProgram:
        return FrequencyProgram(**self.model_dump())


class ActivationSample(BaseModel):
    model_config = _OUTPUT

    t: float
    required_kw: float
    measured_kw: float


class FrequencyActivation(BaseModel):
    """`grid.frequency_activations` (key `zone_id`): one record per activation, when it ends:
    what was required, what the meters show was delivered, and whether the product's timing
    was met."""

    model_config = _OUTPUT

    activation_id: str
    zone_id: Identifier
    area_id: Identifier
    product: Literal["linear", "step"]
    committed_kw: float
    baseline_kw: float
    start_ts: Timestamp
    end_ts: Timestamp
    nadir_hz: float | None
    nadir_ts: Timestamp | None
    peak_required_kw: float
    delivered_kw: float
    time_to_50_s: float | None
    time_to_100_s: float | None
    half_activation_s: float
    full_activation_s: float
    half_met: bool
    full_met: bool
    timing_met: bool
    meter_resolution_s: float | None
    max_reading_age_s: float | None
    ended_by: Literal["RECOVERED", "SILENCE", "PROGRAM"]
    #: Samples taken (one per zone step, about every second); `samples` is thinned to 120.
    sample_count: int = Field(ge=0)
    samples: list[ActivationSample]


def frequency_activation(record: dict) -> FrequencyActivation:
    """The controller's activation record (epoch seconds) as the wire model."""
    times = {k: from_epoch(record[k]) for k in ("start_ts", "end_ts", "nadir_ts")
             if record.get(k) is not None}
    samples = [ActivationSample(t=t, required_kw=r, measured_kw=m)
               for t, r, m in record["samples"]]
    fields = {k: v for k, v in record.items() if k in FrequencyActivation.model_fields}
    return FrequencyActivation.model_validate({**fields, **times, "samples": samples})


class Flexibility(BaseModel):
    """`grid.flexibility` (key `zone_id`) every few seconds: what the zone could shed now
    (Σ load − floor over its controllable stations) against what it has committed."""

    model_config = _OUTPUT

    zone_id: Identifier
    area_id: str | None
    available_kw: float = Field(ge=0)
    committed_kw: float = Field(ge=0)
    load_kw: float = Field(ge=0)
    stations_controllable: int = Field(ge=0)
    phase: Literal["IDLE", "ACTIVE", "RESTORING", "NONE"]
    ts: Timestamp
