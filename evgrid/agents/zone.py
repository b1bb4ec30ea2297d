"""The zone stage: what the station side says about each zone's stations, in.

One worker owns each zone (its partition of the co-partitioned topics), so all of a zone's
decisions are made single-threaded on this worker's loop: here, in the DR agent and in the
clock. Messages are typed (`evgrid.models.internal`) and dispatched by a table of handlers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from evgrid import codec, metrics
from evgrid.agents.decisions import publish_decisions
from evgrid.codec import DecodeError
from evgrid.core.types import ConnectorReading, StationConfig, in_connector_order
from evgrid.ingest.stations import overload_message
from evgrid.models.internal import (
    ZONE_MESSAGE,
    StationJoined,
    StationLeft,
    StationOutcome,
    ZoneLoads,
)
from evgrid.publisher import Publisher, Record
from evgrid.settings import Settings
from evgrid.state.zones import ZoneEntry, ZoneStore


class ZoneStage:
    def __init__(self, settings: Settings, zones: ZoneStore, publisher: Publisher,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.stale_after_s = settings.stale_after_s
        self.zones = zones
        self.out = publisher
        self.clock = clock
        self.handlers: dict[type, Callable[[Any, float], None]] = {
            StationJoined: self.on_joined,
            StationLeft: self.on_left,
            ZoneLoads: self.on_loads,
            StationOutcome: self.on_outcome,
        }

    def on_message(self, record: Record) -> None:
        try:
            message = codec.decode_union(ZONE_MESSAGE, record.value,
                                         self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(record, err)
            return
        self.handlers[type(message)](message, self.clock())

    def on_joined(self, message: StationJoined, now: float) -> None:
        limits = message.limits
        config = StationConfig(
            station_id=message.station_id, zone_id=message.zone_id,
            max_station_kw=limits.max_station_kw, contract_max_kw=limits.contract_max_kw,
            connector_max_kw=dict(limits.connector_max_kw) if limits.connector_max_kw else None,
            profile_mode=limits.profile_mode, stack_level=limits.stack_level,
        )
        self.zones.join(self.zones.zone(message.zone_id, now), config, now)

    def on_left(self, message: StationLeft, now: float) -> None:
        zone = self.zones.zone(message.zone_id, now)
        if self.zones.leave(zone, message.station_id):
            self.step(zone, now, removed=message.station_id)

    def on_loads(self, message: ZoneLoads, now: float) -> None:
        zone = self.zones.zone(message.zone_id, now)
        for station in message.stations:
            connectors = in_connector_order(
                ConnectorReading(connector_id=c[0], connector_type=c[1], power_kw=c[2],
                                 event_ts=c[3], session_id=c[4], arrival_ts=c[5])
                for c in station.connectors)
            if not self.zones.update_loads(zone, station.station_id, connectors, now):
                metrics.LOADS_UNKNOWN_MEMBER.inc()
        self.check_overload(zone, now, exact=False)

    def on_outcome(self, message: StationOutcome, now: float) -> None:
        """Not Accepted: the station is uncontrollable and the others take up its share;
        a cold zone records it and re-allocates once warm (the controller asks for a step)."""
        zone = self.zones.zone(message.zone_id, now)
        zone.last_outcomes[message.station_id] = {
            "command_id": message.command_id, "status": message.status,
            "reason": message.reason, "ts": message.ts,
        }
        metrics.OUTCOMES.labels(status=message.status).inc()
        stations = zone.load.stations if zone.warm(now) else None
        decisions = zone.controller.on_outcome(message.station_id, message.command_id,
                                               message.status, now, stations)
        publish_decisions(self.out, zone, decisions, now)
        self.zones.persist(zone)

    # -- decisions shared with the DR agent and the clock -----------------------------------

    def step(self, zone: ZoneEntry, now: float, removed: str | None = None) -> None:
        """Re-evaluate the zone (time passed, membership changed); a cold zone waits."""
        if not zone.warm(now):
            return
        stations = zone.load.stations
        if removed is not None:
            decisions = zone.controller.on_station_removed(removed, stations, now)
        else:
            decisions = zone.controller.on_tick(stations, now)
        publish_decisions(self.out, zone, decisions, now)
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
