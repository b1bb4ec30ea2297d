"""The zone side's state: each owned zone's members, loads and DR controller, in memory.

Loads are never persisted: after a restart or a rebalance every station side re-forwards its
stations, and a zone loaded from its tables stays *cold* — it does not act — until every
member has reported again or `warmup_s` has passed, so a new owner never decides on a partial
picture. Members' limits and the controller are written when they change.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evgrid.core.control import ZoneController
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables
from evgrid.core.zone import ZoneLoad
from evgrid.state.codecs import STATION_CONFIG, ZONE_CONTROL, ZoneControlRecord
from evgrid.state.tables_io import PartitionWriter, items_in_partition, partition_of
from evgrid.tables import Tables

log = logging.getLogger(__name__)


def member_key(zone_id: str, station_id: str) -> bytes:
    return f"{zone_id}|{station_id}".encode()


def zone_of_member(key: bytes) -> bytes:
    return key.split(b"|", 1)[0]


@dataclass(slots=True)
class ZoneEntry:
    zone_id: str
    partition: int
    load: ZoneLoad
    controller: ZoneController
    persisted: bytes = b""
    cold_until: float = 0.0  # wall time; 0 = warm
    waiting_for: set[str] = field(default_factory=set)  # members not heard since loaded
    loads_at: float | None = None  # Kafka time of the newest reading in the picture
    # Each station's last command outcome from the gateway (views, dashboard).
    last_outcomes: dict[str, dict] = field(default_factory=dict)
    # The last reports published for this zone's events, as sent (views, dashboard).
    recent_reports: deque[dict] = field(default_factory=lambda: deque(maxlen=20))
    # signal_id -> when it arrived (perf_counter), until its first commands are published.
    reacting: dict[str, float] = field(default_factory=dict)
    # DR signals that arrived while cold: (signal, its record, received at perf_counter).
    pending_signals: list[tuple[object, object, float]] = field(default_factory=list)

    def warm(self, now: float) -> bool:
        if self.cold_until and (not self.waiting_for or now >= self.cold_until):
            self.cold_until = 0.0
            self.waiting_for.clear()
        return not self.cold_until

    def load_age_s(self, now: float) -> float | None:
        return None if self.loads_at is None else max(0.0, now - self.loads_at)


class ZoneStore:
    def __init__(self, tables: Tables, tunables: Tunables, partitions: int,
                 source_topic: str, warmup_s: float) -> None:
        self.tables = tables
        self.tunables = tunables
        self.partitions = partitions
        self.writer = PartitionWriter(source_topic)
        self.warmup_s = warmup_s
        self.zones: dict[str, ZoneEntry] = {}

    def zone(self, zone_id: str, now: float) -> ZoneEntry:
        zone = self.zones.get(zone_id)
        if zone is None:
            zone = self.zones[zone_id] = self._load(zone_id, now)
        return zone

    def find(self, zone_id: str, now: float) -> ZoneEntry | None:
        """A zone this worker has state for (views: no empty zone is created)."""
        zone = self.zones.get(zone_id)
        if zone is None and self.tables.zone_control.get(zone_id.encode()) is not None:
            zone = self.zone(zone_id, now)
        return zone

    def held_signals(self) -> Iterator[Any]:
        """The records of DR signals that cold zones hold, not yet applied."""
        for zone in self.zones.values():
            for _signal, record, _received in zone.pending_signals:
                yield record

    def in_partitions(self, partitions: set[int]) -> Iterator[ZoneEntry]:
        for zone in list(self.zones.values()):
            if zone.partition in partitions:
                yield zone

    def keep_only(self, partitions: set[int], now: float) -> None:
        """After a rebalance: forget zones we no longer own, load the owned ones that have
        state, so their events end on time even if no message for them arrives again."""
        dropped = [zone_id for zone_id, zone in self.zones.items()
                   if zone.partition not in partitions]
        for zone_id in dropped:
            del self.zones[zone_id]
        loaded = []
        for key in list(self.tables.zone_control.keys()):
            zone_id = key.decode()
            if zone_id not in self.zones and partition_of(zone_id, self.partitions) in partitions:
                self.zones[zone_id] = self._load(zone_id, now)
                loaded.append(zone_id)
        log.info("evgrid zones: partitions %s: kept %d, dropped %s, loaded %s (cold: %s)",
                 sorted(partitions), len(self.zones) - len(loaded), sorted(dropped),
                 sorted(loaded), sorted(z for z in loaded if self.zones[z].cold_until))

    def _load(self, zone_id: str, now: float) -> ZoneEntry:
        t = self.tunables
        partition = partition_of(zone_id, self.partitions)
        load = ZoneLoad(zone_id, hysteresis_pct=t.overload_hysteresis_pct)
        raw = self.tables.zone_control.get(zone_id.encode())
        if raw is None:
            return ZoneEntry(zone_id, partition, load, ZoneController(zone_id, t))
        record = ZONE_CONTROL.loads(raw)
        prefix = member_key(zone_id, "")
        for key, cfg in items_in_partition(self.tables.zone_stations, partition,
                                           self.partitions, zone_of_member):
            if key.startswith(prefix):
                load.upsert(StationRow(STATION_CONFIG.loads(cfg)))
        load.alarm = record.alarm
        zone = ZoneEntry(zone_id, partition, load,
                         ZoneController.from_dict(record.controller, t), persisted=raw)
        if load.stations:
            zone.cold_until = now + self.warmup_s
            zone.waiting_for = set(load.stations)
        return zone

    # -- changes ----------------------------------------------------------------------------

    def join(self, zone: ZoneEntry, config: StationConfig, now: float) -> bool:
        """Add or update a member; True when it is new to the zone."""
        old = zone.load.stations.get(config.station_id)
        if old is not None and old.config == config:
            return False
        connectors = old.connectors if old is not None else ()
        zone.load.upsert(StationRow(config, connectors), now, self.tunables.stale_after_s)
        self.writer.put(self.tables.zone_stations, zone.partition,
                        member_key(zone.zone_id, config.station_id), STATION_CONFIG.dumps(config))
        if not zone.persisted:
            self.persist(zone)  # the zone exists from now on (views, keep_only)
        return old is None

    def leave(self, zone: ZoneEntry, station_id: str) -> bool:
        if not zone.load.remove(station_id):
            return False
        zone.waiting_for.discard(station_id)
        self.writer.delete(self.tables.zone_stations, zone.partition,
                           member_key(zone.zone_id, station_id))
        return True

    def update_loads(self, zone: ZoneEntry, station_id: str,
                     connectors: tuple[ConnectorReading, ...], now: float) -> bool:
        """A member's latest readings; False for a station the zone does not know."""
        row = zone.load.stations.get(station_id)
        if row is None:
            return False
        updated = StationRow(row.config, connectors)
        zone.load.upsert(updated, now, self.tunables.stale_after_s)
        zone.waiting_for.discard(station_id)
        # When the newest reading behind the picture reached Kafka, not when it reached us:
        # a zone side behind its input shows that lag in `load_age_s`.
        newest = updated.last_heard_ts()
        if newest is not None and (zone.loads_at is None or newest > zone.loads_at):
            zone.loads_at = newest
        return True

    def persist(self, zone: ZoneEntry) -> None:
        """Write the zone's control record only when it changed."""
        data = ZONE_CONTROL.dumps(ZoneControlRecord(zone.controller.to_dict(), zone.load.alarm))
        if data != zone.persisted:
            self.writer.put(self.tables.zone_control, zone.partition, zone.zone_id.encode(), data)
            zone.persisted = data
