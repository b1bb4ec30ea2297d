"""The input messages, validated as docs/architecture.md specifies.

Strict types: a string where a number belongs is bad input, not something to coerce, because
a gateway that sends `"power_kw": "7.4"` is misconfigured and the operator should hear of it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

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
