"""The zone clock: DR transitions happen on time even when no reading arrives.

Timers run on every worker, and Faust standby replicas put other workers' zones in the local
store, so the clock acts only on zones whose partition this worker *actively* owns, and it acts
by sending a `tick` through the zone's partition instead of touching state itself.
"""

from __future__ import annotations

import math
import time
from collections import deque

import faust
from aiokafka.partitioner import murmur2

from evgrid import codec, metrics
from evgrid.agents.publish import Publisher
from evgrid.agents.zone import ZoneSide
from evgrid.settings import Settings

TICK = codec.dumps({"kind": "tick"})
#: How often the clock looks for due zones; transitions are at most this much (plus one
#: round trip through Kafka) late.
RESOLUTION_S = 0.2
HISTORY_POINTS = 180  # 15 minutes at the default 5 s step


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as every producer of our topics uses."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class ZoneClock:
    def __init__(
        self, app: faust.App, settings: Settings, zones: ZoneSide, publisher: Publisher
    ) -> None:
        self.app = app
        self.settings = settings
        self.zones = zones
        self.out = publisher
        self.needs_scan = True
        self._last_gauges = 0.0
        self._last_sample = 0.0
        #: Per zone: (ts, load, cap, capacity) every `history_step_s`, for the dashboard.
        self.history: dict[str, deque[tuple[float, float, float | None, float]]] = {}

    def owned_partitions(self) -> set[int]:
        topic = self.settings.topics.station_load
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def owns(self, zone_id: str, owned: set[int]) -> bool:
        return partition_of(zone_id, self.settings.partitions) in owned

    def on_assignment_changed(self) -> None:
        self.needs_scan = True

    def scan(self, owned: set[int]) -> None:
        """After a restart or rebalance, find the zones we own that have state, so their
        events end on time even if no message for them ever arrives again."""
        for key in list(self.zones.tables.zone_control.keys()):
            zone_id = key.decode()
            if zone_id not in self.zones.zones and self.owns(zone_id, owned):
                self.zones.zones[zone_id] = self.zones.load_zone(zone_id)
        self.needs_scan = False

    def run_once(self) -> int:
        """Send ticks to due zones; returns how many were sent."""
        if self.app.rebalancing:
            return 0
        owned = self.owned_partitions()
        if self.needs_scan:
            self.scan(owned)
        now = time.time()
        sent = 0
        interval = self.settings.tick_interval_s
        for zone_id, zone in list(self.zones.zones.items()):
            if not self.owns(zone_id, owned):
                continue
            deadline = zone.controller.next_deadline(now)
            if deadline is None or deadline > now:
                continue
            if now - zone.tick_sent_at < min(interval, 0.5):
                continue  # a tick is on its way
            zone.tick_sent_at = now
            self.out.send(self.out.station_load, zone_id, TICK)
            sent += 1
        if now - self._last_gauges >= 1.0:
            self._last_gauges = now
            self.update_gauges(owned, now)
        return sent

    def update_gauges(self, owned: set[int], now: float) -> None:
        sample = now - self._last_sample >= self.settings.history_step_s
        if sample:
            self._last_sample = now
        active = noncompliant = 0
        stale = self.settings.stale_after_s
        for zone_id, zone in self.zones.zones.items():
            if not self.owns(zone_id, owned):
                continue
            summary = zone.load.summary(now, stale)
            metrics.ZONE_LOAD.labels(zone=zone_id).set(summary["zone_total_power_kw"])
            metrics.ZONE_CAPACITY.labels(zone=zone_id).set(summary["zone_capacity_kw"])
            metrics.ZONE_UTILIZATION.labels(zone=zone_id).set(summary["utilization_pct"])
            view = zone.controller.view(now)
            metrics.ZONE_CAP.labels(zone=zone_id).set(
                view["cap_kw"] if view["cap_kw"] is not None else math.nan
            )
            metrics.DR_SHORTFALL.labels(zone=zone_id).set(view["shortfall_kw"])
            if sample:
                self.history.setdefault(zone_id, deque(maxlen=HISTORY_POINTS)).append(
                    (now, summary["zone_total_power_kw"], view["cap_kw"],
                     summary["zone_capacity_kw"])
                )
            active += view["active_events"]
            noncompliant += view["stations_noncompliant"]
        metrics.DR_ACTIVE.set(active)
        metrics.DR_NONCOMPLIANT.set(noncompliant)
        self.update_lag()

    def update_lag(self) -> None:
        """Lag of the partitions this worker owns now; partitions that moved away are
        dropped, or their last value would linger in the gauge forever."""
        monitor = self.app.monitor
        assigned = self.app.assignor.assigned_actives()
        metrics.CONSUMER_LAG.clear()
        for tp, end in list(monitor.tp_end_offsets.items()):
            if tp not in assigned:
                continue
            read = monitor.tp_read_offsets.get(tp, -1)
            metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(0, end - read - 1)
            )
