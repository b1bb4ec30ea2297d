"""The zone side's state: each owned zone's members, loads and DR controller, in memory.

Members, limits and loads are a view of the station-rows topic (one compacted row per
station, in its zone's partition): a new owner reads its partitions of it back from the
beginning, and until it has reached the end it saw at assignment every zone of those
partitions is *cold* — it holds its DR signals and decides nothing — so no decision is made on
half a picture. The DR controller and the overload alarm are written to the zone-control
table when they change.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evgrid.core.control import ZoneController
from evgrid.core.frequency.program import FrequencyProgram
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables
from evgrid.core.zone import ZoneLoad
from evgrid.state.codecs import ZONE_CONTROL, ZoneControlRecord
from evgrid.state.sites import SiteBook
from evgrid.state.tables_io import PartitionWriter, partition_of
from evgrid.tables import Tables

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ZoneEntry:
    zone_id: str
    partition: int
    load: ZoneLoad
    controller: ZoneController
    persisted: bytes = b""
    cold: bool = False  # its partition's rows are still being read back
    loads_at: float | None = None  # Kafka time of the newest reading in the picture
    # Each station's last command outcome from the gateway (views, dashboard).
    last_outcomes: dict[str, dict] = field(default_factory=dict)
    # The last reports published for this zone's events, as sent (views, dashboard).
    recent_reports: deque[dict] = field(default_factory=lambda: deque(maxlen=20))
    # The last frequency activation records published for this zone (views, dashboard).
    recent_activations: deque[dict] = field(default_factory=lambda: deque(maxlen=20))
    # signal_id -> when it arrived (perf_counter), until its first commands are published.
    reacting: dict[str, float] = field(default_factory=dict)
    # DR signals that arrived while cold: (signal, its record, received at perf_counter).
    pending_signals: list[tuple[object, object, float]] = field(default_factory=list)

    def warm(self, now: float) -> bool:
        return not self.cold

    def members_reporting(self, now: float, stale_after_s: float) -> int:
        """Members with a live reading: the rest count 0 kW in every figure of the zone."""
        return sum(1 for row in self.load.stations.values()
                   if any(c.is_live(now, stale_after_s) for c in row.connectors))

    def load_age_s(self, now: float) -> float | None:
        return None if self.loads_at is None else max(0.0, now - self.loads_at)


class ZoneStore:
    def __init__(self, tables: Tables, tunables: Tunables, partitions: int,
                 source_topic: str, sites: SiteBook | None = None) -> None:
        self.tables = tables
        #: Every site, on every worker; each zone's controller reads its zone's.
        self.sites = sites or SiteBook()
        self.tunables = tunables
        self.partitions = partitions
        self.writer = PartitionWriter(source_topic)
        self.zones: dict[str, ZoneEntry] = {}
        #: station_id -> the zone whose member it is (a tombstone names only the station).
        self.member_of: dict[str, str] = {}
        #: zone_id -> its frequency program, every zone's (config.frequency_programs is read
        #: whole); a zone's controller takes its own when loaded.
        self.programs: dict[str, FrequencyProgram] = {}
        #: Partitions whose rows are being read back: their zones are cold.
        self.loading: set[int] = set()
        self.owned: set[int] = set()

    def zone(self, zone_id: str, now: float) -> ZoneEntry:
        zone = self.zones.get(zone_id)
        if zone is None:
            zone = self.zones[zone_id] = self._load(zone_id, now)
        return zone

    # -- reading a partition's rows back -------------------------------------------------------

    def loaded(self, partition: int) -> list[ZoneEntry]:
        """The partition's rows are read up to the end seen at assignment: its zones warm."""
        self.loading.discard(partition)
        warmed = [zone for zone in self.in_partitions({partition}) if zone.cold]
        for zone in warmed:
            zone.cold = False
        return warmed

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

    def keep_only(self, partitions: set[int], now: float) -> set[str]:
        """After a rebalance: forget zones we no longer own (returned); a partition new to us
        is to be read back (its zones cold until then); load the owned zones that have
        control state, so their events end on time even if no message for them arrives
        again."""
        dropped = [zone_id for zone_id, zone in self.zones.items()
                   if zone.partition not in partitions]
        for zone_id in dropped:
            for station_id in self.zones.pop(zone_id).load.stations:
                self.member_of.pop(station_id, None)
        self.loading = (self.loading & partitions) | (partitions - self.owned)
        self.owned = set(partitions)
        loaded = []
        for key in list(self.tables.zone_control.keys()):
            zone_id = key.decode()
            if zone_id not in self.zones and partition_of(zone_id, self.partitions) in partitions:
                self.zones[zone_id] = self._load(zone_id, now)
                loaded.append(zone_id)
        log.info("evgrid zones: partitions %s: kept %d, dropped %s, loaded %s (cold: %s)",
                 sorted(partitions), len(self.zones) - len(loaded), sorted(dropped),
                 sorted(loaded), sorted(z for z in loaded if self.zones[z].cold))
        return set(dropped)

    def _load(self, zone_id: str, now: float) -> ZoneEntry:
        t = self.tunables
        partition = partition_of(zone_id, self.partitions)
        load = ZoneLoad(zone_id, hysteresis_pct=t.overload_hysteresis_pct)
        raw = self.tables.zone_control.get(zone_id.encode())
        cold = partition in self.loading
        if raw is None:
            controller = ZoneController(zone_id, t)
            entry = ZoneEntry(zone_id, partition, load, controller, cold=cold)
        else:
            record = ZONE_CONTROL.loads(raw)
            load.alarm = record.alarm
            controller = ZoneController.from_dict(record.controller, t)
            entry = ZoneEntry(zone_id, partition, load, controller, persisted=raw, cold=cold)
        controller.sites = self.sites.of_zone(zone_id)
        if zone_id in self.programs:
            # Only a program this worker has read: a restarted worker loads its zones before
            # the programs' read-back ends, and its restored activation (with the program it
            # runs on) must go on. A program removed meanwhile was removed by the owner of
            # the time, whose control record says so.
            controller.set_frequency_program(self.programs[zone_id], None, now)
        return entry

    # -- changes ----------------------------------------------------------------------------

    def apply_row(self, config: StationConfig, connectors: tuple[ConnectorReading, ...],
                  now: float) -> tuple[ZoneEntry, ZoneEntry | None] | None:
        """A station's row: its zone, limits and latest readings. Returns its zone and, when
        the row moves it from another zone, the zone it left; None for a row of a mapping
        older than the one the station is a member by (rows of two partitions are read in
        no particular order)."""
        station_id = config.station_id
        left = None
        previous = self.member_of.get(station_id)
        if previous is not None and previous != config.zone_id:
            current = self.zones[previous].load.stations.get(station_id)
            if current is not None and config.mapped_at < current.config.mapped_at:
                return None
            left = self.remove(station_id)
        zone = self.zone(config.zone_id, now)
        current = zone.load.stations.get(station_id)
        if current is not None and current.config == config:
            config = current.config  # most rows only bring loads: one config object kept
        zone.load.upsert(StationRow(config, connectors), now, self.tunables.stale_after_s)
        self.member_of[station_id] = config.zone_id
        self._note_newest(zone, connectors)
        if not zone.persisted:
            self.persist(zone)  # the zone exists from now on (views, keep_only)
        return zone, left

    def update_loads(self, zone: ZoneEntry, station_id: str,
                     connectors: tuple[ConnectorReading, ...], now: float) -> bool:
        """A member's latest readings; False for a station the zone does not list."""
        row = zone.load.stations.get(station_id)
        if row is None:
            return False
        zone.load.upsert(StationRow(row.config, connectors), now, self.tunables.stale_after_s)
        self._note_newest(zone, connectors)
        return True

    @staticmethod
    def _note_newest(zone: ZoneEntry, connectors: tuple[ConnectorReading, ...]) -> None:
        """When the newest reading behind the picture reached Kafka, not when it reached us:
        a zone side behind its input shows that lag in `load_age_s`."""
        newest = zone.loads_at  # a plain loop: a generator per station cost more than this
        for c in connectors:
            if newest is None or c.arrival_ts > newest:
                newest = c.arrival_ts
        zone.loads_at = newest

    def remove(self, station_id: str, partition: int | None = None) -> ZoneEntry | None:
        """The station is no member any more (tombstoned in `partition`, or moved): the zone
        it left. A tombstone only removes it from a zone of its own partition: the row that
        moved it to a zone of another partition may have been read first."""
        zone_id = self.member_of.get(station_id)
        zone = self.zones.get(zone_id) if zone_id is not None else None
        if zone is None or (partition is not None and zone.partition != partition):
            return None
        del self.member_of[station_id]
        return zone if zone.load.remove(station_id) else None

    def persist(self, zone: ZoneEntry) -> None:
        """Write the zone's control record only when it changed."""
        data = ZONE_CONTROL.dumps(ZoneControlRecord(zone.controller.to_dict(), zone.load.alarm))
        if data != zone.persisted:
            self.writer.put(self.tables.zone_control, zone.partition, zone.zone_id.encode(), data)
            zone.persisted = data
