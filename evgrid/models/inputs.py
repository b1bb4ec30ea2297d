"""The input messages, validated as docs/architecture.md specifies.

Strict types: a string where a number belongs is bad input, not something to coerce, because
a gateway that sends `"power_kw": "7.4"` is misconfigured and the operator should hear of it.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from evgrid.codec import Checked
from evgrid.core.types import ConnectorReading
from evgrid.models.fields import (
    ConnectorType,
    FiniteFloat,
    Identifier,
    NonNegativeKw,
    Percent,
    Priority,
    SignalType,
    Timestamp,
)
from evgrid.timeutil import iso_epoch

_INPUT = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class MeterValue(BaseModel):
    """One reading of one connector (`ocpp.meter_values`, key `station_id`)."""

    model_config = _INPUT

    station_id: Identifier
    connector_id: int = Field(ge=1, le=1024)
    session_id: str | None = None
    connector_type: ConnectorType
    power_kw: NonNegativeKw
    current_a: FiniteFloat = 0.0
    voltage_v: FiniteFloat = 0.0
    energy_kwh: NonNegativeKw = 0.0
    soc_percent: int | None = Field(default=None, ge=0, le=100)
    event_ts: Timestamp

    def reading(self) -> StationReading:
        """The station and the core's reading (its arrival time is the caller's to set)."""
        return self.station_id, ConnectorReading(
            connector_id=self.connector_id,
            connector_type=self.connector_type,
            power_kw=self.power_kw,
            event_ts=self.event_ts.timestamp(),
            session_id=self.session_id,
            current_a=self.current_a,
            voltage_v=self.voltage_v,
            energy_kwh=self.energy_kwh,
            soc_percent=self.soc_percent,
        )


#: A meter value as the station side takes it: (station_id, reading).
StationReading = tuple[str, ConnectorReading]

_CONNECTOR_TYPES = frozenset(get_args(ConnectorType))
_INF = math.inf


def meter_reading(data: dict[str, Any]) -> StationReading | None:
    """`MeterValue(**data).reading()` for the form gateways send (floats as floats, the time
    as ISO-8601 text), checked by hand: pydantic's validation was the largest single cost of
    a reading. It accepts only what `MeterValue` accepts, with the same values; anything
    else (None) is for the model to judge, so a rejection keeps the model's reason. Keep the
    two in step: tests/models/test_inputs.py compares them on generated input."""
    get = data.get
    station_id = get("station_id")
    connector_id = get("connector_id")
    connector_type = get("connector_type")
    power_kw = get("power_kw")
    session_id = get("session_id")
    current_a = get("current_a", 0.0)
    voltage_v = get("voltage_v", 0.0)
    energy_kwh = get("energy_kwh", 0.0)
    soc_percent = get("soc_percent")
    event_ts = get("event_ts")
    # `type(x) is float` refuses ints and bools (the model takes ints as floats: rare, left
    # to it); a comparison chain with both bounds refuses NaN and the infinities.
    if not (type(station_id) is str and 0 < len(station_id) <= 256
            and type(connector_id) is int and 1 <= connector_id <= 1024
            and type(connector_type) is str and connector_type in _CONNECTOR_TYPES
            and type(power_kw) is float and 0.0 <= power_kw < _INF
            and (session_id is None or type(session_id) is str)
            and type(current_a) is float and -_INF < current_a < _INF
            and type(voltage_v) is float and -_INF < voltage_v < _INF
            and type(energy_kwh) is float and 0.0 <= energy_kwh < _INF
            and (soc_percent is None or (type(soc_percent) is int and 0 <= soc_percent <= 100))
            and type(event_ts) is str):
        return None
    ts = iso_epoch(event_ts)
    if ts is None:
        return None
    return station_id, ConnectorReading(connector_id, connector_type, power_kw, ts, session_id,
                                        current_a, voltage_v, energy_kwh, soc_percent)


#: How the input path decodes meter values: the hand check, the model for the rest.
METER_VALUE = Checked(MeterValue, meter_reading, MeterValue.reading)


class DemandResponseSignal(BaseModel):
    """A DR event from the grid operator (`grid.demand_response`, key `zone_id`)."""

    model_config = _INPUT

    signal_id: Identifier
    zone_id: Identifier
    signal_type: SignalType
    # How much: exactly one of the three (none only for RESTORE), resolved by the core against
    # the zone's uncurtailed baseline at activation.
    target_reduction_kw: NonNegativeKw | None = None
    target_reduction_pct: Percent | None = None
    cap_kw: NonNegativeKw | None = None
    start_ts: Timestamp
    end_ts: Timestamp
    priority: Priority
    received_ts: Timestamp

    @model_validator(mode="after")
    def _end_after_start(self) -> DemandResponseSignal:
        if self.end_ts <= self.start_ts:
            raise ValueError("end_ts must be later than start_ts")
        return self

    @model_validator(mode="after")
    def _one_target(self) -> DemandResponseSignal:
        given = [name for name in TARGET_FIELDS if getattr(self, name) is not None]
        if len(given) > 1:
            raise PydanticCustomError(
                "two_forms",
                "give exactly one of target_reduction_kw, target_reduction_pct, cap_kw; "
                "got {given}",
                {"field": "target", "given": ", ".join(given)},
            )
        if not given and self.signal_type != "RESTORE":
            raise PydanticCustomError(
                "missing",
                "a {signal_type} needs one of target_reduction_kw, target_reduction_pct or "
                "cap_kw",
                {"field": "target", "signal_type": self.signal_type},
            )
        return self


#: The three ways a DR signal says how much.
TARGET_FIELDS = ("target_reduction_kw", "target_reduction_pct", "cap_kw")


class StationZone(BaseModel):
    """A station's zone and limits (`config.station_zones`, key `station_id`, compacted)."""

    model_config = _INPUT

    station_id: Identifier
    zone_id: Identifier
    max_station_kw: NonNegativeKw
    contract_max_kw: NonNegativeKw
    connector_max_kw: dict[ConnectorType, NonNegativeKw] | None = None
    # Many chargers reject station-wide max profiles: the operator can ask for per-connector
    # TxDefaultProfile, and for a low stack level, per station.
    profile_mode: str = Field(default="station", pattern="^(station|connector)$")
    stack_level: int = Field(default=1, ge=0, le=99)
    #: The site (grid connection) the station is behind; a site of this zone.
    site_id: Identifier | None = None


class SiteRecord(BaseModel):
    """A site: a grid connection shared by stations (`config.sites`, key `site_id`,
    compacted). It lies within one zone."""

    model_config = _INPUT

    site_id: Identifier
    zone_id: Identifier
    max_kw: NonNegativeKw
    max_current_a: NonNegativeKw | None = None  # per phase
    margin_pct: Percent = 0.0


class GatewayOutcome(BaseModel):
    """A command's outcome as the worker reads it (`ocpp.commands.outcomes`, key
    `station_id`): the fields the control loop needs; anything a gateway adds is ignored."""

    model_config = _INPUT

    command_id: Identifier
    station_id: Identifier
    action: Literal["SET", "CLEAR"]
    status: Literal["Accepted", "Rejected", "NotSupported", "CallError", "Timeout", "Offline",
                    "Expired", "Superseded"]
    reason: str | None = None
    attempt: int = Field(default=1, ge=0)
    ts: Timestamp
