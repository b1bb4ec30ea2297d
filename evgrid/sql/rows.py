"""From evgrid's output messages to table rows: pure, no database, no clock.

Each topic has one decoder that validates a record with the topic's wire model (a message that
does not fit is rejected with a reason, never written) and returns the rows it makes, as
(table, row) pairs. Every table has a key — natural (`command_id`, `report_id`, station and
window, zone and time) or the record's own (topic, partition, offset) — so writing a record
twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from evgrid import codec
from evgrid.models import (
    ChargingCommand,
    CommandOutcome,
    ComplianceAlert,
    DRReport,
    DRStatus,
    OverloadAlert,
    SignalRefusedAlert,
    StationAlert,
    StationStatus,
    StationWindow,
    ZoneLoadReport,
)
from evgrid.models.frequency import FrequencyActivation
from evgrid.settings import SqlSettings

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Table:
    """How rows reach one table: its columns, its key, and what a repeated key does —
    nothing (history), or replace the row when the new one is newer (`*_current`)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    newest: tuple[str, ...] = ()  # `*_current`: the columns that order a key's rows
    partitioned_by: str | None = None  # a daily-partitioned table's time column

    def insert_sql(self) -> str:
        cols = ", ".join(self.columns)
        params = ", ".join(f"${i}" for i in range(1, len(self.columns) + 1))
        head = (f"INSERT INTO {self.name} AS t ({cols}) VALUES ({params}) "
                f"ON CONFLICT ({', '.join(self.key)}) DO ")
        if not self.newest:
            return head + "NOTHING"
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
        excluded = ", ".join(f"EXCLUDED.{c}" for c in self.newest)
        held = ", ".join(f"t.{c}" for c in self.newest)
        return head + f"UPDATE SET {sets} WHERE ({excluded}) > ({held})"

    def key_of(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(k)] for k in self.key)

    def order_of(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(k)] for k in self.newest)


WINDOW_COLUMNS = ("station_id", "window_start", "window_end", "zone_id", "total_power_kw",
                  "avg_power_per_connector_kw", "max_connector_power_kw", "energy_kwh",
                  "active_connectors", "active_sessions", "published_at")
ZONE_COLUMNS = ("zone_id", "ts", "zone_total_power_kw", "zone_capacity_kw", "stations_active",
                "cap_kw", "shortfall_kw", "stations_uncontrollable", "members",
                "members_reporting", "load_age_s", "published_at")
STATUS_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "signal_id", "zone_id",
                  "state", "signal_type", "priority", "start_ts", "end_ts", "baseline_kw",
                  "cap_kw", "current_kw", "achieved_reduction_kw", "shortfall_kw",
                  "stations_commanded", "stations_noncompliant", "load_age_s", "members",
                  "members_reporting", "updated_ts", "published_at")
OFFSET_KEY = ("kafka_topic", "kafka_partition", "kafka_offset")
ACTIVATION_COLUMNS = ("activation_id", "zone_id", "area_id", "product", "start_ts", "end_ts",
                      "ended_by", "nadir_hz", "nadir_ts", "committed_kw", "baseline_kw",
                      "peak_required_kw", "delivered_kw", "time_to_50_s", "half_activation_s",
                      "half_met", "time_to_100_s", "full_activation_s", "full_met",
                      "timing_met", "meter_resolution_s", "max_reading_age_s", "samples",
                      "published_at")

TABLES: dict[str, Table] = {t.name: t for t in (
    Table("station_windows", WINDOW_COLUMNS, ("station_id", "window_start"),
          partitioned_by="window_start"),
    Table("station_current", WINDOW_COLUMNS, ("station_id",),
          newest=("window_start",)),
    Table("zone_load", ZONE_COLUMNS, ("zone_id", "ts"), partitioned_by="ts"),
    Table("zone_current", ZONE_COLUMNS, ("zone_id",), newest=("ts",)),
    Table("dr_status_history", STATUS_COLUMNS, OFFSET_KEY),
    Table("dr_events", STATUS_COLUMNS, ("signal_id",),
          newest=("updated_ts", "kafka_offset")),
    Table("dr_reports", (
        "report_id", "signal_id", "zone_id", "signal_type", "priority", "target_reduction_kw",
        "target_reduction_pct", "target_cap_kw", "baseline_kw", "cap_kw", "planned_start_ts",
        "planned_end_ts", "actual_start_ts", "actual_end_ts", "ended_by", "duration_s",
        "baseline_energy_kwh", "drawn_energy_kwh", "delivered_kwh", "target_kwh",
        "delivered_pct_of_target", "time_to_cap_s", "peak_overshoot_kw", "max_shortfall_kw",
        "caps", "report_ts", "published_at"), ("report_id",)),
    Table("dr_report_stations", (
        "report_id", "station_id", "signal_id", "zone_id", "average_target_kw",
        "measured_avg_kw", "energy_kwh", "seconds_commanded", "seconds_noncompliant",
        "seconds_uncontrollable", "targets", "report_ts"), ("report_id", "station_id")),
    Table("commands", (
        "command_id", "action", "reason", "station_id", "zone_id", "signal_id", "priority",
        "target_power_kw", "station_shed_kw", "dr_end_ts", "command_ts", "connectors",
        "published_at"), ("command_id",)),
    Table("command_outcomes", (
        "command_id", "attempt", "status", "final", "station_id", "action", "reason",
        "signal_id", "gateway_id", "command_ts", "ts", "published_at"),
        ("command_id", "attempt", "status")),
    Table("alerts", (
        "source", "alert_type", "subject_id", "detected_at", "station_id", "zone_id",
        "signal_id", "total_power_kw", "contract_max_kw", "capacity_kw", "overload_kw",
        "detail", "published_at"), ("source", "alert_type", "subject_id", "detected_at")),
    Table("frequency_activations", ACTIVATION_COLUMNS, ("activation_id",)),
    Table("station_status", (
        "kafka_topic", "kafka_partition", "kafka_offset", "station_id", "gateway_id", "event",
        "connected", "ocpp_version", "connector_id", "connector_status", "error_code",
        "vendor", "model", "ts", "published_at"), OFFSET_KEY),
)}


@dataclass(frozen=True)
class Source:
    """Where a record came from: the sink's key for tables without a natural one, and the
    time the producer stamped it (`published_at`, the start of freshness)."""

    topic: str
    partition: int
    offset: int
    published_at: datetime


def published(timestamp_ms: int | None) -> datetime:
    return datetime.fromtimestamp((timestamp_ms or 0) / 1000.0, tz=UTC)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


Rows = list[tuple[str, Row]]
M = TypeVar("M", bound=BaseModel)


def _decode(model: type[M], raw: bytes | None, limit: int) -> M:
    """The wire model, ignoring top-level fields it does not know: a worker newer than the
    sink may add some, and the sink still writes what it knows."""
    data = codec.loads_object(raw, limit)
    return codec.validate(model, {k: v for k, v in data.items() if k in model.model_fields})
Decoder = Callable[[bytes | None, Source, int], Rows]


def _windows(raw: bytes | None, src: Source, limit: int) -> Rows:
    w = _decode(StationWindow, raw, limit)
    energy = w.total_power_kw * (w.window_end - w.window_start).total_seconds() / 3600.0
    row = (w.station_id, w.window_start, w.window_end, w.zone_id, w.total_power_kw,
           w.avg_power_per_connector_kw, w.max_connector_power_kw, round(energy, 6),
           w.active_connectors, w.active_sessions, src.published_at)
    return [("station_windows", row), ("station_current", row)]


def _zone_load(raw: bytes | None, src: Source, limit: int) -> Rows:
    z = _decode(ZoneLoadReport, raw, limit)
    row = (z.zone_id, z.ts, z.zone_total_power_kw, z.zone_capacity_kw, z.stations_active,
           z.cap_kw, z.shortfall_kw, z.stations_uncontrollable, z.members, z.members_reporting,
           z.load_age_s, src.published_at)
    return [("zone_load", row), ("zone_current", row)]


def _dr_status(raw: bytes | None, src: Source, limit: int) -> Rows:
    s = _decode(DRStatus, raw, limit)
    row = (src.topic, src.partition, src.offset, s.signal_id, s.zone_id, s.state,
           s.signal_type, s.priority, s.start_ts, s.end_ts, s.baseline_kw, s.cap_kw,
           s.current_kw, s.achieved_reduction_kw, s.shortfall_kw, s.stations_commanded,
           s.stations_noncompliant, s.load_age_s, s.members, s.members_reporting, s.updated_ts,
           src.published_at)
    return [("dr_status_history", row), ("dr_events", row)]


def _dr_report(raw: bytes | None, src: Source, limit: int) -> Rows:
    r = _decode(DRReport, raw, limit)
    rows: Rows = [("dr_reports", (
        r.report_id, r.signal_id, r.zone_id, r.signal_type, r.priority, r.target_reduction_kw,
        r.target_reduction_pct, r.target_cap_kw, r.baseline_kw, r.cap_kw, r.planned_start_ts,
        r.planned_end_ts, r.actual_start_ts, r.actual_end_ts, r.ended_by, r.duration_s,
        r.baseline_energy_kwh, r.drawn_energy_kwh, r.delivered_kwh, r.target_kwh,
        r.delivered_pct_of_target, r.time_to_cap_s, r.peak_overshoot_kw, r.max_shortfall_kw,
        _json([c.model_dump(mode="json") for c in r.caps]), r.report_ts, src.published_at))]
    for s in r.stations:
        rows.append(("dr_report_stations", (
            r.report_id, s.station_id, r.signal_id, r.zone_id, s.average_target_kw,
            s.measured_avg_kw, s.energy_kwh, s.seconds_commanded, s.seconds_noncompliant,
            s.seconds_uncontrollable, _json([t.model_dump(mode="json") for t in s.targets]),
            r.report_ts)))
    return rows


def _command(raw: bytes | None, src: Source, limit: int) -> Rows:
    c = _decode(ChargingCommand, raw, limit)
    return [("commands", (
        c.command_id, c.action, c.reason, c.station_id, c.zone_id, c.signal_id, c.priority,
        c.target_power_kw, c.station_shed_kw, c.dr_end_ts, c.command_ts,
        _json([x.model_dump(mode="json") for x in c.connectors]), src.published_at))]


def _outcome(raw: bytes | None, src: Source, limit: int) -> Rows:
    o = _decode(CommandOutcome, raw, limit)
    return [("command_outcomes", (
        o.command_id, o.attempt, o.status, o.final, o.station_id, o.action, o.reason,
        o.signal_id, o.gateway_id, o.command_ts, o.ts, src.published_at))]


def _overload(raw: bytes | None, src: Source, limit: int) -> Rows:
    a = _decode(OverloadAlert, raw, limit)
    subject = a.station_id or a.site_id or a.zone_id or ""  # a site alert names its zone too
    return [("alerts", (
        "overload", a.alert_type, subject, a.detected_at, a.station_id, a.zone_id, None,
        a.total_power_kw, a.contract_max_kw, a.capacity_kw, a.overload_kw,
        _json(a.model_dump(mode="json")), src.published_at))]


def _compliance(raw: bytes | None, src: Source, limit: int) -> Rows:
    a = _decode(ComplianceAlert, raw, limit)
    return [("alerts", (
        "compliance", a.state, a.station_id, a.detected_at, a.station_id, a.zone_id,
        a.signal_id, a.measured_kw, None, None, max(0.0, a.measured_kw - a.target_power_kw),
        _json(a.model_dump(mode="json")), src.published_at))]


def _station_alert(raw: bytes | None, src: Source, limit: int) -> Rows:
    a = _decode(StationAlert, raw, limit)
    return [("alerts", (
        "station", a.alert_type, a.station_id, a.detected_at, a.station_id, None, None, None,
        None, None, None, _json(a.model_dump(mode="json")), src.published_at))]


def _signal_alert(raw: bytes | None, src: Source, limit: int) -> Rows:
    a = _decode(SignalRefusedAlert, raw, limit)
    return [("alerts", (
        "signal", a.alert_type, a.zone_id, a.detected_at, None, a.zone_id, a.signal_id, None,
        None, None, None, _json(a.model_dump(mode="json")), src.published_at))]


def _activation(raw: bytes | None, src: Source, limit: int) -> Rows:
    a = _decode(FrequencyActivation, raw, limit)
    values = {**a.model_dump(exclude={"samples", "sample_count"}),
              "samples": _json([s.model_dump() for s in a.samples]),
              "published_at": src.published_at}
    return [("frequency_activations", tuple(values[c] for c in ACTIVATION_COLUMNS))]


def _station_status(raw: bytes | None, src: Source, limit: int) -> Rows:
    s = _decode(StationStatus, raw, limit)
    return [("station_status", (
        src.topic, src.partition, src.offset, s.station_id, s.gateway_id, s.event, s.connected,
        s.ocpp_version, s.connector_id, s.connector_status, s.error_code, s.vendor, s.model,
        s.ts, src.published_at))]


def decoders(settings: SqlSettings) -> dict[str, Decoder]:
    """Topic name → decoder, for every output the sink writes."""
    t = settings.topics
    return {
        t.station_windows: _windows,
        t.zone_load: _zone_load,
        t.dr_status: _dr_status,
        t.dr_reports: _dr_report,
        t.commands: _command,
        t.outcomes: _outcome,
        t.overload_alerts: _overload,
        t.compliance_alerts: _compliance,
        t.station_alerts: _station_alert,
        t.signal_alerts: _signal_alert,
        t.station_status: _station_status,
        t.frequency_activations: _activation,
    }


def coalesce(table: Table, rows: list[Row]) -> list[Row]:
    """A batch's rows for one table, one per key: the newest for a `*_current` table (one
    statement cannot upsert a key twice, and a late record must not win), the first for
    history (a repeat of a natural key is the same fact published again)."""
    seen: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = table.key_of(row)
        held = seen.get(key)
        if held is None or (table.newest and table.order_of(row) > table.order_of(held)):
            seen[key] = row
    return list(seen.values())
