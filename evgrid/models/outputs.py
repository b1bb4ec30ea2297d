"""Every message evgrid publishes. Outputs pass through these models, so a bug that would
put a malformed command on the wire fails loudly here instead of at a charger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evgrid.models.fields import ConnectorType, Identifier, Priority, SignalType, Timestamp

_OUTPUT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ConnectorLimitOut(BaseModel):
    model_config = _OUTPUT

    connector_id: int = Field(ge=1)
    connector_type: ConnectorType
    limit_kw: float = Field(ge=0)
    limit_a: float | None = Field(default=None, ge=0)


class ChargingCommand(BaseModel):
    """One charging-limit command for one station (`ocpp.commands.set_charging_profile`)."""

    model_config = _OUTPUT

    command_id: str
    action: Literal["SET", "CLEAR"]
    reason: Literal["DR", "CONTRACT"]
    station_id: Identifier
    zone_id: Identifier
    target_power_kw: float | None = Field(ge=0)
    station_shed_kw: float = Field(ge=0)
    signal_id: Identifier
    priority: Priority
    dr_end_ts: Timestamp
    command_ts: Timestamp
    connectors: list[ConnectorLimitOut]
    ocpp: dict[str, list[dict[str, Any]]]


class OverloadAlert(BaseModel):
    """`alerts.grid.overload`: one message when an episode starts, one when it ends."""

    model_config = _OUTPUT

    alert_type: Literal[
        "CONTRACT_OVERLOAD", "CONTRACT_OVERLOAD_CLEARED", "ZONE_OVERLOAD", "ZONE_OVERLOAD_CLEARED"
    ]
    station_id: str | None = None
    zone_id: str | None = None
    total_power_kw: float
    contract_max_kw: float | None = None
    capacity_kw: float | None = None
    overload_kw: float
    detected_at: Timestamp


class ComplianceAlert(BaseModel):
    """`alerts.dr.compliance`: a station missed its target past the grace, or complies again."""

    model_config = _OUTPUT

    state: Literal["NONCOMPLIANT", "COMPLIANT"]
    station_id: Identifier
    zone_id: Identifier
    signal_id: Identifier
    target_power_kw: float
    measured_kw: float
    tolerance_kw: float
    since: Timestamp
    detected_at: Timestamp


class DRStatus(BaseModel):
    """`grid.dr_status`: the state of one DR event, on every change."""

    model_config = _OUTPUT

    signal_id: Identifier
    zone_id: Identifier
    state: Literal["SCHEDULED", "ACTIVE", "ENDED"]
    signal_type: SignalType
    priority: Priority
    start_ts: Timestamp
    end_ts: Timestamp
    baseline_kw: float | None
    cap_kw: float | None
    current_kw: float
    achieved_reduction_kw: float
    shortfall_kw: float
    stations_commanded: int
    stations_noncompliant: int
    updated_ts: Timestamp


class DeadLetter(BaseModel):
    """`evgrid.deadletter`: enough to find, understand and replay a rejected message."""

    model_config = _OUTPUT

    source_topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    error: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"]
    raw_truncated: bool
    raw_size: int
    ts: Timestamp


class ZoneLoadReport(BaseModel):
    """`grid.zone_load` (key `zone_id`): a zone's live load every few seconds, for the OpenADR
    VEN's TELEMETRY_USAGE / TELEMETRY_STATUS reports (the utility sees the reduction live)."""

    model_config = _OUTPUT

    zone_id: Identifier
    zone_total_power_kw: float = Field(ge=0)
    zone_capacity_kw: float = Field(ge=0)
    stations_active: int = Field(ge=0)
    cap_kw: float | None = Field(default=None, ge=0)
    shortfall_kw: float = Field(default=0.0, ge=0)
    stations_uncontrollable: int = Field(default=0, ge=0)
    ts: Timestamp


def zone_load_report(
    summary: Mapping[str, Any],
    now: float,
    cap_kw: float | None = None,
    shortfall_kw: float = 0.0,
    stations_uncontrollable: int = 0,
) -> ZoneLoadReport:
    """Build a zone's `grid.zone_load` message from its zone summary (`zone_id`,
    `zone_total_power_kw`, `zone_capacity_kw`, `stations_active`) and the governing DR event's
    cap and shortfall (None / 0 without one). Pure: `now` is epoch seconds, passed in."""
    return ZoneLoadReport(
        zone_id=summary["zone_id"],
        zone_total_power_kw=round(max(0.0, float(summary["zone_total_power_kw"])), 3),
        zone_capacity_kw=round(float(summary["zone_capacity_kw"]), 3),
        stations_active=int(summary["stations_active"]),
        cap_kw=None if cap_kw is None else round(max(0.0, cap_kw), 3),
        shortfall_kw=round(max(0.0, shortfall_kw), 3),
        stations_uncontrollable=stations_uncontrollable,
        ts=datetime.fromtimestamp(now, tz=UTC),
    )
