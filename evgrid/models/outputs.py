"""Every message evgrid publishes. Outputs pass through these models, so a bug that would
put a malformed command on the wire fails loudly here instead of at a charger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evgrid.models.fields import ConnectorType, Identifier, Priority, SignalType, Timestamp
from evgrid.timeutil import from_epoch

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
    #: DR (a DR event's cap), SITE (a site's limit), DR+SITE (both bind the station),
    #: FREQUENCY (a frequency activation) or FREQUENCY+SITE.
    reason: Literal["DR", "SITE", "DR+SITE", "FREQUENCY", "FREQUENCY+SITE", "CONTRACT"]
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
        "CONTRACT_OVERLOAD", "CONTRACT_OVERLOAD_CLEARED", "ZONE_OVERLOAD", "ZONE_OVERLOAD_CLEARED",
        "SITE_OVERLOAD", "SITE_OVERLOAD_CLEARED",
    ]
    station_id: str | None = None
    zone_id: str | None = None
    site_id: str | None = None
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


class StationAlert(BaseModel):
    """`alerts.stations`: a station's clock is off by more than `clock_skew_alert_s` (one
    alert when the episode starts, one when it ends)."""

    model_config = _OUTPUT

    alert_type: Literal["CLOCK_SKEW", "CLOCK_SKEW_CLEARED"]
    station_id: Identifier
    clock_offset_s: float
    clock_skew_alert_s: float
    detected_at: Timestamp


class SignalRefusedAlert(BaseModel):
    """`alerts.dr.signals`: a zone refused DR signals (TOO_MANY_EVENTS: more live events than
    allowed; one alert per episode, while every refused signal is dead-lettered), or its
    frequency source fell silent (FREQUENCY_SILENT: the response is disarmed)."""

    model_config = _OUTPUT

    alert_type: Literal["TOO_MANY_EVENTS", "FREQUENCY_SILENT"]
    zone_id: Identifier
    signal_id: Identifier
    detail: str
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
    # How old the newest station loads behind this decision are (None: none arrived yet).
    load_age_s: float | None = Field(default=None, ge=0)
    # How complete the zone's picture is: its members, and those with a live reading.
    members: int = Field(default=0, ge=0)
    members_reporting: int = Field(default=0, ge=0)


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


class CapInForce(BaseModel):
    model_config = _OUTPUT

    from_ts: Timestamp
    cap_kw: float = Field(ge=0)
    signal_id: Identifier  # the event whose cap governed the zone from then on


class TargetChange(BaseModel):
    model_config = _OUTPUT

    from_ts: Timestamp
    target_kw: float = Field(ge=0)


class StationReport(BaseModel):
    """One station's part in a DR event."""

    model_config = _OUTPUT

    station_id: Identifier
    targets: list[TargetChange]
    average_target_kw: float | None  # time-weighted over the seconds it was commanded
    measured_avg_kw: float = Field(ge=0)  # over the event's duration
    energy_kwh: float = Field(ge=0)
    seconds_commanded: float = Field(ge=0)
    seconds_noncompliant: float = Field(ge=0)
    seconds_uncontrollable: float = Field(ge=0)


class DRReport(BaseModel):
    """`grid.dr_reports` (key `zone_id`): one settlement report per event, when it ends or is
    restored. Energies are integrated from the stations' loads (a stale connector counts
    0 kW); `delivered_kwh = baseline_energy_kwh − drawn_energy_kwh`."""

    model_config = _OUTPUT

    report_id: str
    signal_id: Identifier
    zone_id: Identifier
    signal_type: SignalType
    priority: Priority
    target_reduction_kw: float | None
    target_reduction_pct: float | None
    target_cap_kw: float | None
    baseline_kw: float | None
    cap_kw: float | None
    caps: list[CapInForce]
    planned_start_ts: Timestamp
    planned_end_ts: Timestamp
    actual_start_ts: Timestamp | None  # None: restored or expired before it started
    actual_end_ts: Timestamp | None
    ended_by: Literal["END", "RESTORE"] | None
    duration_s: float = Field(ge=0)
    baseline_energy_kwh: float = Field(ge=0)
    drawn_energy_kwh: float = Field(ge=0)
    delivered_kwh: float
    target_kwh: float = Field(ge=0)
    delivered_pct_of_target: float | None
    time_to_cap_s: float | None
    peak_overshoot_kw: float = Field(ge=0)
    max_shortfall_kw: float = Field(ge=0)
    #: What site limits held back during the event (normal operation, not DR delivery).
    site_limited_kwh: float = Field(default=0.0, ge=0)
    sites_limited: list[str] = []
    stations: list[StationReport]
    report_ts: Timestamp


_REPORT_TIMES = ("planned_start_ts", "planned_end_ts", "actual_start_ts", "actual_end_ts",
                 "report_ts")


def dr_report_message(report: dict[str, Any]) -> DRReport:
    """The core's report (epoch seconds) as the wire model (ISO-8601 UTC)."""

    def at(ts: float | None) -> datetime | None:
        return None if ts is None else from_epoch(ts)

    return DRReport.model_validate({
        **report,
        **{name: at(report[name]) for name in _REPORT_TIMES},
        "caps": [{**c, "from_ts": at(c["from_ts"])} for c in report["caps"]],
        "stations": [
            {**s, "targets": [{**t, "from_ts": at(t["from_ts"])} for t in s["targets"]]}
            for s in report["stations"]
        ],
    })
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
    # How complete the picture is: members, those with a live reading, the newest's age.
    members: int = Field(default=0, ge=0)
    members_reporting: int = Field(default=0, ge=0)
    load_age_s: float | None = Field(default=None, ge=0)
    ts: Timestamp


def zone_load_report(
    summary: Mapping[str, Any],
    now: float,
    cap_kw: float | None = None,
    shortfall_kw: float = 0.0,
    stations_uncontrollable: int = 0,
    members_reporting: int = 0,
    load_age_s: float | None = None,
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
        members=int(summary.get("stations", 0)),
        members_reporting=members_reporting,
        load_age_s=None if load_age_s is None else round(load_age_s, 3),
        ts=datetime.fromtimestamp(now, tz=UTC),
    )


class StationWindow(BaseModel):
    """`grid.station_windows` (key `station_id`): one station's closed window (1 minute by
    default), published once when it closes — the seed's `station_current_load` stream.
    `total_power_kw` is the sum of each connector's time-average power (core/windows.py);
    `zone_id` is the station's zone when the window closed (None: not mapped yet)."""

    model_config = _OUTPUT

    station_id: Identifier
    zone_id: str | None
    window_start: Timestamp
    window_end: Timestamp
    total_power_kw: float = Field(ge=0)
    active_sessions: int = Field(ge=0)
    active_connectors: int = Field(ge=0)
    avg_power_per_connector_kw: float = Field(ge=0)
    max_connector_power_kw: float = Field(ge=0)


def station_window(station_id: str, zone_id: str | None, stat: Any) -> StationWindow:
    """A closed `WindowStat` (epoch seconds) as the wire model."""
    return StationWindow(
        station_id=station_id, zone_id=zone_id,
        window_start=from_epoch(stat.window_start), window_end=from_epoch(stat.window_end),
        total_power_kw=stat.total_power_kw, active_sessions=stat.active_sessions,
        active_connectors=stat.active_connectors,
        avg_power_per_connector_kw=stat.avg_power_per_connector_kw,
        max_connector_power_kw=stat.max_connector_power_kw,
    )
