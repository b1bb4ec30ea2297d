"""The meter-value ingest: the station side's batch consumer (`AssignedConsumer`).

Meter values are the one high-volume input: fetched with `getmany` and applied in batches on
the meter topic and its repartition topic. It commits (under its own group id) only at a
checkpoint, after the stations' state is written and every output is flushed — at-least-once:
a crash replays from the last checkpoint, and readings not newer than the held ones change
nothing, so a replay never counts twice.

Between chunks of `YIELD_EVERY` records it gives way (`Publisher.control_first`), so DR
signals, handled by their own consumer on the same loop, never wait behind a fetched backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid import metrics
from evgrid.handlers.stations import StationSide
from evgrid.heap import release_free_memory
from evgrid.ingest.consumer import AssignedConsumer
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings
from evgrid.state.stations import StationStore

log = logging.getLogger(__name__)

#: Stations written per step of a checkpoint before yielding to the event loop.
CHECKPOINT_CHUNK = 500
#: Zones whose loads records are built per step before yielding to the event loop.
LOADS_CHUNK = 5
#: While the ingest is behind, how often each zone hears its stations' changed readings
#: (coalesced over the batches in between: the zone side's work is then bounded by the fleet,
#: not by the reading rate); caught up, or when a station its zone has no reading of yet
#: reports, they leave after every batch.
LOADS_INTERVAL_S = 2.0
#: Readings applied between two turns given to the control loop (`Publisher.control_first`).
YIELD_EVERY = 256


class MeterIngest(AssignedConsumer):
    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], stations: StationStore,
                 side: StationSide, **kwargs: Any) -> None:
        t, i = settings.topics, settings.internal_topics
        super().__init__(settings, publisher, dispatch, (t.meter_values, i.meter_repartition),
                         settings.ingest_group, settings.replay_bound_s(), **kwargs)
        self.stations = stations
        self.side = side
        self._last_loads = 0.0
        self._behind = 0  # records fetched partitions still had after the last batch
        self._trim_due = False  # batches were taken since the heap was last trimmed
        self._last_checkpoint = time.monotonic()
        self._last_forget = time.monotonic()

    async def after_fetch(self, fetched: bool) -> None:
        now = time.monotonic()
        # Caught up, each batch's loads leave at once (a DR signal right behind a reading sees
        # it); behind, they are coalesced over the interval, so a backlog is not paid twice.
        caught_up = fetched and self._behind == 0
        due = now - self._last_loads >= LOADS_INTERVAL_S
        if caught_up or due or self.side.urgent:
            async with self._lock:
                self._last_loads = now
                await self.send_loads()
        if now - self._last_forget >= 60.0:
            self._last_forget = now
            self.housekeeping()
        if fetched:
            self._trim_due = True
        elif self._trim_due:
            # The input went quiet: a burst's batch buffers back to the system now, not at
            # the next checkpoint (in a thread, as the checkpointer does).
            self._trim_due = False
            await asyncio.to_thread(release_free_memory)

    def checkpoint_due(self, now: float) -> bool:
        return now - self._last_checkpoint >= self.settings.checkpoint_interval_s

    def housekeeping(self) -> None:
        self.stations.forget_idle(time.time())

    async def _apply(self, batches: dict[TopicPartition, list]) -> None:
        dispatch = self.dispatch
        out = self.out
        count = self.side.count_readings
        yield_every = YIELD_EVERY
        n = 0
        for tp, records in batches.items():
            metrics.INGEST_BATCHES.observe(len(records))
            for record in records:
                out.guarded(dispatch, record)
                n += 1
                if n % yield_every == 0:
                    count()  # what a scrape in between sees
                    await out.control_first()  # DR work waiting on the loop goes first
            self.positions[tp] = records[-1].offset + 1
        count()
        await out.drain()
        self._update_lag(batches)

    async def send_loads(self) -> None:
        """Each zone's changed stations, one loads record per zone, a few zones at a time: a
        whole fleet's in one go would hold the loop for as long as they take to build."""
        while self.side.flush_loads(max_zones=LOADS_CHUNK):
            await self.out.drain()
            await self.out.control_first()  # DR work waiting on the loop goes first

    def _update_lag(self, batches: dict[TopicPartition, list]) -> None:
        assert self.consumer is not None
        behind = 0
        for tp in batches:
            end = self.consumer.highwater(tp)
            if end is not None:
                lag = max(0, end - self.positions.get(tp, end))
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
                behind += lag
        self._behind = behind

    @Service.task
    async def _checkpointer(self) -> None:
        while not self.should_stop:
            await self.sleep(min(1.0, self.settings.checkpoint_interval_s))
            if not self.checkpoint_due(time.monotonic()):
                continue
            try:
                await self.checkpoint_in_steps()
            except KafkaError as exc:  # the broker is away: the next one covers it
                log.warning("evgrid ingest: checkpoint failed: %r", exc)
            # The checkpoint's buffers, and the batches' since the last, back to the system;
            # in a thread (ctypes lets go of the GIL), so the loop goes on meanwhile.
            await asyncio.to_thread(release_free_memory)

    async def checkpoint_in_steps(self) -> None:
        """The periodic checkpoint, beside the batch loop rather than in it: the offsets are
        taken first, then the stations are written a chunk at a time, each chunk's changelog
        handed to the producer before the next (which waits while the producer has no room:
        a large fleet's checkpoint would otherwise queue tens of megabytes; waited for under
        the lock, it would stop ingestion for minutes). Readings
        applied meanwhile are past the offsets committed: replayed after a crash, they change
        nothing the checkpoint already holds. A rebalance takes over (it checkpoints
        everything itself)."""
        self._last_checkpoint = time.monotonic()
        epoch = self._epoch
        async with self._lock:
            if self._assigned is not None or not self.owned or self.consumer is None:
                return
            offsets = self.owned_positions()
        written = 0
        while True:
            async with self._lock:
                if self._epoch != epoch or self._assigned is not None:
                    return
                chunk = self.stations.checkpoint(limit=CHECKPOINT_CHUNK)
            if not chunk:
                break
            written += chunk
            await self.out.drain()  # the chunk's changelog to the producer (room permitting)
            await self.out.control_first()
        async with self._lock:
            if self._epoch != epoch or self._assigned is not None or self.consumer is None:
                return
            await self._flush_and_commit(offsets, written)

    async def checkpoint_and_commit(self) -> None:
        """Everything at once (on revocation and at stop): station state to its table, every
        output flushed, then the offsets committed."""
        assert self.consumer is not None
        self._last_checkpoint = time.monotonic()
        offsets = self.owned_positions()
        written = 0
        while chunk := self.stations.checkpoint(limit=CHECKPOINT_CHUNK):
            written += chunk
            await self.out.control_first()  # DR work first; our batches wait (the lock)
        await self._flush_and_commit(offsets, written)

    async def _flush_and_commit(self, offsets: dict[TopicPartition, int], written: int) -> None:
        assert self.consumer is not None
        metrics.CHECKPOINTS.inc()
        metrics.CHECKPOINT_STATIONS.inc(written)
        self.side.flush_loads()  # committed readings have reached their zones
        await self.commit_when_flushed(offsets)

    def assigned(self, owned: set[int]) -> None:
        """Station state follows the partitions (`StationStore.keep_only`, before any
        consumer resumes); the lag gauge, ours alone, starts over with the next batches."""
        metrics.CONSUMER_LAG.clear()
        self.side.forget_partitions(owned)
