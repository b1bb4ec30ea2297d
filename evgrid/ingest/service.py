"""The meter-value ingest: the station side's batch consumer (`AssignedConsumer`).

Meter values are the one high-volume input: fetched with `getmany` and applied in batches on
the meter topic and its repartition topic. It commits (under its own group id) only at a
checkpoint, after the stations' state is written and every output is flushed — at-least-once:
a crash replays from the last checkpoint, and readings not newer than the held ones change
nothing, so a replay never counts twice.

Between chunks of `yield_every` records it gives way (`Publisher.control_first`), so DR
signals, handled by their own consumer on the same loop, never wait behind a fetched backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid import metrics
from evgrid.heap import release_free_memory
from evgrid.ingest.consumer import AssignedConsumer

if TYPE_CHECKING:
    from evgrid.agents.runtime import Runtime

log = logging.getLogger(__name__)

#: Stations written per step of a checkpoint before yielding to the event loop.
CHECKPOINT_CHUNK = 500
#: Checkpoint writes queued in Faust's producer buffer before the next chunk waits: unbounded,
#: a 50,000-station checkpoint queued 22,000 of them (~90 MB).
CHECKPOINT_QUEUED_MAX = 2_000
#: Zones whose `loads` are built per step before yielding to the event loop.
ZONE_LOADS_CHUNK = 5
#: The second re-forward after an assignment comes half a zone warm-up later, at least this.
REFORWARD_MIN_S = 2.0


class MeterIngest(AssignedConsumer):
    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        s = rt.settings
        super().__init__(rt, (s.topics.meter_values, s.topics.meter_repartition),
                         s.ingest_group, s.replay_bound_s(), **kwargs)
        self.max_records = s.ingest_max_records
        self._last_zone_loads = 0.0
        self._behind = 0  # records fetched partitions still had after the last batch
        self._last_checkpoint = time.monotonic()
        self._last_forget = time.monotonic()
        self._reforward_due = 0.0  # monotonic time of the second re-forward; 0: none due

    async def after_fetch(self, fetched: bool) -> None:
        now = time.monotonic()
        # Caught up, each batch's loads leave at once (a DR signal right behind a reading sees
        # it); behind, they are coalesced over the interval, so a backlog is not paid twice.
        caught_up = fetched and self._behind == 0
        if caught_up or now - self._last_zone_loads >= self.settings.zone_loads_interval_s:
            async with self._lock:
                self._last_zone_loads = now
                await self.send_zone_loads()
        if self._reforward_due and now >= self._reforward_due:
            async with self._lock:
                await self.reforward_again()
        if now - self._last_forget >= 60.0:
            self._last_forget = now
            self.housekeeping()

    def checkpoint_due(self, now: float) -> bool:
        return now - self._last_checkpoint >= self.settings.checkpoint_interval_s

    def housekeeping(self) -> None:
        self.rt.stations.forget_idle(time.time())

    async def _apply(self, batches: dict[TopicPartition, list]) -> None:
        on_meter_value = self.rt.ingest.on_meter_value
        out = self.rt.publisher
        yield_every = self.settings.ingest_yield_every
        n = 0
        for tp, records in batches.items():
            metrics.INGEST_BATCHES.observe(len(records))
            for record in records:
                out.guarded(on_meter_value, record)
                n += 1
                if n % yield_every == 0:
                    await out.control_first()  # DR work waiting on the loop goes first
            self.positions[tp] = records[-1].offset + 1
        await out.drain()
        self._update_lag(batches)

    async def send_zone_loads(self) -> None:
        """Each zone's changed stations, one `loads` message per zone since the last time,
        a few zones at a time: a whole fleet's loads in one go held the loop ~100 ms."""
        while self.rt.ingest.flush_zone_loads(max_zones=ZONE_LOADS_CHUNK):
            await self.rt.publisher.drain()
            await self.rt.publisher.control_first()  # DR work waiting on the loop goes first

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
        taken first, then the stations are written a chunk at a time, each waiting for
        Faust's producer buffer to ebb (unbounded, a 50,000-station checkpoint queued
        ~90 MB; waited for under the lock, it stopped ingestion for minutes at 1,000,000
        connectors). Readings applied meanwhile are past the offsets committed: replayed
        after a crash, they change nothing the checkpoint already holds. A rebalance
        takes over (it checkpoints everything itself)."""
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
                chunk = self.rt.stations.checkpoint(limit=CHECKPOINT_CHUNK)
            if not chunk:
                break
            written += chunk
            await self.rt.publisher.changelog_ebb(CHECKPOINT_QUEUED_MAX)
            await self.rt.publisher.control_first()
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
        while chunk := self.rt.stations.checkpoint(limit=CHECKPOINT_CHUNK):
            written += chunk
            await self.rt.publisher.control_first()  # DR work first; our batches wait (the lock)
        await self._flush_and_commit(offsets, written)

    async def _flush_and_commit(self, offsets: dict[TopicPartition, int], written: int) -> None:
        assert self.consumer is not None
        metrics.CHECKPOINTS.inc()
        metrics.CHECKPOINT_STATIONS.inc(written)
        self.rt.ingest.flush_zone_loads()  # committed readings have reached their zones
        await self.commit_when_flushed(offsets)

    def partitions_changed(self, gone: set[int], new: set[int]) -> None:
        """Station state follows the partitions: dropped for those gone, rebuilt from their
        checkpoints for the new ones (those that stay keep theirs in memory). The lag gauge,
        ours alone, starts over with the next batches."""
        metrics.CONSUMER_LAG.clear()
        for partition in gone:
            self.rt.stations.drop_partition(partition)
        for partition in new:
            self.rt.stations.load_partition(partition)
            metrics.INGEST_PARTITIONS_LOADED.inc()

    def assigned(self, owned: set[int]) -> None:
        """Every zone owner hears about our stations again (a new owner is cold till then),
        and once more half a warm-up later, as insurance: when the zone stage still read
        through Faust's consumer, a CI run showed a new owner lacking every station the
        other worker had re-sent just before it began reading (README "Known bug"). The
        second copy lands while the new owner's zone is normally still cold (it waits a
        whole warm-up for members it has not heard), so it does not decide without them."""
        self.rt.ingest.forget_partitions()
        self.rt.ingest.reforward(owned)
        self._reforward_due = time.monotonic() + max(
            REFORWARD_MIN_S, self.settings.zone_warmup_s / 2)

    async def reforward_again(self) -> None:
        self._reforward_due = 0.0
        if self._assigned is not None:
            return  # a newer assignment re-forwards (and schedules the next) itself
        self.rt.ingest.reforward(self.owned)
        await self.rt.publisher.drain()
        log.info("evgrid %s: re-forwarded the stations of partitions %s again",
                 self.group_id, sorted(self.owned))
