"""The zone side: station rows and zone loads in, the zone's picture and its decisions out.

One worker owns each zone (its partition of the co-partitioned topics), so all of a zone's
decisions are made single-threaded on this worker's loop: here, in the DR signal handler and
in the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from evgrid import metrics
from evgrid.core.types import ConnectorReading, StationConfig, in_connector_order
from evgrid.handlers.decisions import publish_decisions
from evgrid.handlers.stations import overload_message
from evgrid.models.internal import StationRowMessage, ZoneLoadsMessage
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings
from evgrid.state.zones import ZoneEntry, ZoneStore


def readings(connectors: list) -> tuple[ConnectorReading, ...]:
    """A station's `ConnectorLoad`s as the core's readings, in connector order."""
    return in_connector_order([
        ConnectorReading(connector_id, connector_type, power_kw, event_ts, session_id,
                         arrival_ts=arrival_ts)
        for connector_id, connector_type, power_kw, event_ts, session_id, arrival_ts
        in connectors])


def row_config(row: StationRowMessage) -> StationConfig:
    limits = row.limits
    return StationConfig(
        station_id=row.station_id, zone_id=row.zone_id,
        max_station_kw=limits.max_station_kw, contract_max_kw=limits.contract_max_kw,
        connector_max_kw=dict(limits.connector_max_kw) if limits.connector_max_kw else None,
        profile_mode=limits.profile_mode, stack_level=limits.stack_level,
        mapped_at=row.mapped_at, site_id=row.site_id,
    )


class ZoneStage:
    def __init__(self, settings: WorkerSettings, zones: ZoneStore, publisher: Publisher,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.stale_after_s = settings.stale_after_s
        self.zones = zones
        self.out = publisher
        self.clock = clock

    def on_picture(self, message: StationRowMessage | ZoneLoadsMessage | None,
                   record: Record) -> None:
        """A record of the station-rows topic: a station's row, a zone's loads, or a
        tombstone (the station left the zone of this partition)."""
        if isinstance(message, ZoneLoadsMessage):
            self.on_loads(message)
        else:
            self.on_row(message, record)

    def on_loads(self, message: ZoneLoadsMessage) -> None:
        now = self.clock()
        zone = self.zones.zone(message.zone_id, now)
        for station in message.stations:
            if not self.zones.update_loads(zone, station.station_id,
                                           readings(station.connectors), now):
                metrics.LOADS_NOT_MEMBER.inc()
                continue
            zone.controller.note_row(zone.load.stations[station.station_id], now)
        if not zone.cold:
            self.check_overload(zone, now, exact=False)

    def on_row(self, row: StationRowMessage | None, record: Record) -> None:
        """A station's row (None: tombstoned, it left the zone of this partition)."""
        now = self.clock()
        if row is None:
            station_id = (record.key or b"").decode()
            left = self.zones.remove(station_id, record.partition)
            if left is not None:
                self.step(left, now, removed=station_id)
            return
        applied = self.zones.apply_row(row_config(row), readings(row.connectors), now)
        if applied is None:
            return  # a row of an older mapping, in the partition of the zone it left
        zone, left = applied
        if left is not None:
            self.step(left, now, removed=row.station_id)
        zone.controller.note_row(zone.load.stations[row.station_id], now)
        if row.outcome is not None:
            self.on_outcome(zone, row.station_id, row.outcome, now)
        if not zone.cold:
            self.check_overload(zone, now, exact=False)

    def on_outcome(self, zone: ZoneEntry, station_id: str, outcome: tuple, now: float) -> None:
        """Not Accepted: the station is uncontrollable and the others take up its share; a
        cold zone records it and re-allocates once warm (the controller asks for a step).
        A row repeats the station's last outcome: only a new one counts."""
        command_id, status, reason, ts = outcome
        last = zone.last_outcomes.get(station_id)
        if last is not None and last["command_id"] == command_id and last["status"] == status:
            return
        zone.last_outcomes[station_id] = {
            "command_id": command_id, "status": status, "reason": reason, "ts": ts,
        }
        metrics.OUTCOMES.labels(status=status).inc()
        stations = zone.load.stations if zone.warm(now) else None
        decisions = zone.controller.on_outcome(station_id, command_id, status, now, stations)
        publish_decisions(self.out, zone, decisions, now, self.stale_after_s)
        self.zones.persist(zone)

    def on_warm(self, zone: ZoneEntry, now: float) -> None:
        """The zone's rows are read back: a commanded station the log no longer lists left
        while nobody owned the zone, and gets its CLEAR now."""
        for station_id in [s for s in zone.controller.commanded if s not in zone.load.stations]:
            self.step(zone, now, removed=station_id)

    # -- decisions shared with the DR signal handler and the clock ---------------------------

    def step(self, zone: ZoneEntry, now: float, removed: str | None = None) -> None:
        """Re-evaluate the zone (time passed, membership changed); a cold zone waits."""
        if not zone.warm(now):
            return
        stations = zone.load.stations
        if removed is not None:
            decisions = zone.controller.on_station_removed(removed, stations, now)
        else:
            decisions = zone.controller.on_tick(stations, now)
        publish_decisions(self.out, zone, decisions, now, self.stale_after_s)
        self.check_overload(zone, now)
        self.zones.persist(zone)

    def check_overload(self, zone: ZoneEntry, now: float, exact: bool = True) -> None:
        alert = zone.load.check_overload(now, self.stale_after_s, exact)
        if alert is None:
            return
        metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
        self.out.alert(
            self.out.overload_alerts, zone.zone_id, overload_message(alert),
            alert["alert_type"],
            f"{alert['total_power_kw']:.1f} kW vs capacity {alert['capacity_kw']:.1f}",
        )
        self.zones.persist(zone)
