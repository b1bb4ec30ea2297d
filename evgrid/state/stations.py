"""The station side's state: in memory, per partition, checkpointed to RocksDB-backed tables.

Like quixstreams' write-behind transaction: readings change memory only and mark the station
dirty; `checkpoint(partition)` writes each dirty station once (coalesced) and the ingest
Service commits its offsets only after that write is flushed, so every committed reading is in
a checkpoint. Closed windows and contract-alarm changes are written as they happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from evgrid.core.overload import HysteresisAlarm
from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading, StationConfig, Tunables
from evgrid.core.windows import WindowStat
from evgrid.state.codecs import (
    STATION_CHECKPOINT,
    STATION_CONFIG,
    WINDOW_STATS,
    StationCheckpoint,
)
from evgrid.state.tables_io import PartitionWriter, items_in_partition
from evgrid.tables import Tables

#: A connector's power must move by this much before the zone owner hears of it...
FORWARD_DEAD_BAND_KW = 0.05


@dataclass(slots=True)
class StationEntry:
    """One station's working state."""

    station_id: str
    partition: int
    state: StationState
    alarm: HysteresisAlarm
    config: StationConfig | None = None
    # What the zone owner was last told: connector_id, power, session_id for each connector,
    # flat (a dict of tuples costs a third as much again as the readings); memory only.
    forwarded: tuple = ()
    forwarded_at: float = 0.0
    windows_persisted: float | None = None  # window_end of the last closed window written
    # The gateway's last outcome for the station (command_id, status, reason, ts), told to
    # the zone owner with the station's row; memory only.
    outcome: tuple | None = None

    def worth_forwarding(self, reading: ConnectorReading, heartbeat_s: float) -> bool:
        """Forward a reading that changes the zone's picture, or keeps it fresh."""
        told = self.forwarded
        for i in range(0, len(told), 3):
            if told[i] == reading.connector_id:
                return (
                    told[i + 2] != reading.session_id
                    or abs(told[i + 1] - reading.power_kw) >= FORWARD_DEAD_BAND_KW
                    or reading.arrival_ts - self.forwarded_at >= heartbeat_s
                )
        return True

    def mark_forwarded(self) -> None:
        # A plain loop: a generator per station cost a tenth of the loads' flush.
        told: list = []
        at: float | None = None
        for connector_id, c in self.state.connectors.items():
            told += (connector_id, c.power_kw, c.session_id)
            if at is None or c.arrival_ts > at:
                at = c.arrival_ts
        self.forwarded = tuple(told)
        self.forwarded_at = 0.0 if at is None else at


class StationStore:
    """Every station of the partitions this worker owns, with dirty tracking per partition."""

    def __init__(self, tables: Tables, tunables: Tunables, partitions: int,
                 source_topic: str) -> None:
        self.tables = tables
        self.tunables = tunables
        self.partitions = partitions
        self.writer = PartitionWriter(source_topic)
        self.entries: dict[str, StationEntry] = {}
        self.owned: dict[int, set[str]] = {}
        self.dirty: dict[int, set[str]] = {}

    # -- partitions -------------------------------------------------------------------------

    def load_partition(self, partition: int) -> int:
        """Rebuild a newly owned partition from its checkpoints and configs."""
        members = self.owned.setdefault(partition, set())
        self.dirty.setdefault(partition, set())
        n = 0
        for key, raw in items_in_partition(self.tables.station_state, partition,
                                           self.partitions):
            cp = STATION_CHECKPOINT.loads(raw)
            station_id = key.decode()
            self.entries[station_id] = StationEntry(station_id, partition, cp.state, cp.alarm)
            members.add(station_id)
            n += 1
        for key, raw in items_in_partition(self.tables.station_config, partition,
                                           self.partitions):
            station_id = key.decode()
            self._get_or_create(station_id, partition).config = STATION_CONFIG.loads(raw)
        return n

    def keep_only(self, partitions: set[int]) -> set[int]:
        """After a rebalance: drop the partitions another worker owns now, rebuild the new
        ones from their checkpoints; returns the new ones."""
        for partition in set(self.owned) - partitions:
            self.drop_partition(partition)
        new = partitions - set(self.owned)
        for partition in new:
            self.load_partition(partition)
        return new

    def drop_partition(self, partition: int) -> None:
        """Another worker owns it now: forget it (its checkpoint was written on revoke)."""
        for station_id in self.owned.pop(partition, ()):
            self.entries.pop(station_id, None)
        self.dirty.pop(partition, None)

    def owned_partitions(self) -> set[int]:
        return set(self.owned)

    def in_partition(self, partition: int) -> Iterator[StationEntry]:
        for station_id in self.owned.get(partition, ()):
            yield self.entries[station_id]

    # -- entries ----------------------------------------------------------------------------

    def get(self, station_id: str) -> StationEntry | None:
        return self.entries.get(station_id)

    def entry(self, station_id: str, partition: int) -> StationEntry:
        entry = self.entries.get(station_id)
        if entry is None:
            entry = self._get_or_create(station_id, partition)
        return entry

    def _get_or_create(self, station_id: str, partition: int) -> StationEntry:
        entry = self.entries.get(station_id)
        if entry is None:
            t = self.tunables
            entry = StationEntry(
                station_id, partition, StationState.from_tunables(t),
                HysteresisAlarm(hysteresis_pct=t.overload_hysteresis_pct),
            )
            self.entries[station_id] = entry
            self.owned.setdefault(partition, set()).add(station_id)
        return entry

    def touched(self, entry: StationEntry) -> None:
        dirty = self.dirty.get(entry.partition)  # not setdefault: a new set every reading
        if dirty is None:
            dirty = self.dirty[entry.partition] = set()
        dirty.add(entry.station_id)

    def set_config(self, entry: StationEntry, config: StationConfig | None) -> None:
        entry.config = config
        key = entry.station_id.encode()
        if config is None:
            self.writer.delete(self.tables.station_config, entry.partition, key)
        else:
            self.writer.put(self.tables.station_config, entry.partition, key,
                            STATION_CONFIG.dumps(config))

    # -- durability -------------------------------------------------------------------------

    def persist_closed_windows(self, entry: StationEntry) -> list[WindowStat]:
        """Closed windows go to the window table as they close (not with the checkpoint);
        returns the ones closed since the last call, for the station-windows topic (after a
        recovery, the kept ones again: its readers upsert by station and window)."""
        windows = entry.state.windows
        end = windows.closed_end
        if end is None or end == entry.windows_persisted:
            return []
        closed = windows.closed
        last = entry.windows_persisted
        entry.windows_persisted = closed[-1].window_end
        self.writer.put(self.tables.station_windows, entry.partition,
                        entry.station_id.encode(), WINDOW_STATS.dumps(list(closed)))
        return [w for w in closed if last is None or w.window_end > last]

    def write_now(self, entry: StationEntry) -> None:
        """An alarm change is durable at once, not at the next checkpoint."""
        self._write(entry)
        self.dirty.get(entry.partition, set()).discard(entry.station_id)

    def checkpoint(self, partitions: Iterable[int] | None = None,
                   limit: int | None = None) -> int:
        """Write dirty stations of `partitions` (default: all owned) once each, at most
        `limit` of them (the caller yields to the event loop between calls); 0 when none
        is left."""
        written = 0
        for partition in list(self.owned if partitions is None else partitions):
            dirty = self.dirty.get(partition)
            while dirty and (limit is None or written < limit):
                entry = self.entries.get(dirty.pop())
                if entry is not None:
                    self._write(entry)
                    written += 1
            if dirty is not None and not dirty:
                # A set keeps its table when emptied: one that held every station of the
                # partition would hold that memory from one checkpoint to the next.
                self.dirty[partition] = set()
        return written

    def _write(self, entry: StationEntry) -> None:
        self.writer.put(self.tables.station_state, entry.partition, entry.station_id.encode(),
                        STATION_CHECKPOINT.dumps(StationCheckpoint(entry.state, entry.alarm)))

    def forget_idle(self, now: float) -> int:
        """Connectors silent for `connector_forget_s` are dropped; a station left with no
        connector and no zone mapping is removed with its checkpoint."""
        forget_s = self.tunables.connector_forget_s
        dropped = 0
        for station_id, entry in list(self.entries.items()):
            gone = entry.state.forget_idle(now, forget_s)
            if gone:
                dropped += gone
                self.touched(entry)
            if not entry.state.connectors and entry.config is None:
                self.entries.pop(station_id)
                self.owned.get(entry.partition, set()).discard(station_id)
                self.dirty.get(entry.partition, set()).discard(station_id)
                self.writer.delete(self.tables.station_state, entry.partition,
                                   station_id.encode())
        return dropped
