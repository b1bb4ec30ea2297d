"""The meter-value ingest: a Faust Service with its own batch aiokafka consumer.

Faust's per-event path tops out near 10k messages/s with an agent that does nothing (see
README "Performance"); meter values are the one high-volume input, so they are fetched with
`getmany` and applied in batches here. The Service follows Faust's assignment: it owns exactly
the partitions of `config.station_zones` Faust gives this worker, and consumes those of the
meter topic and its repartition topic. It commits (under its own group id) only at a
checkpoint, after the stations' state is written and every output is flushed — at-least-once:
a crash replays from the last checkpoint, and readings not newer than the held ones change
nothing, so a replay never counts twice.

Between chunks of `yield_every` records it yields to the event loop, so DR signals, handled by
their own agent on the same loop, never wait behind a fetched backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid import metrics
from evgrid.codec import DecodeError
from evgrid.heap import release_free_memory

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
#: How often the DR-signal consumer commits what it has handled (once its outputs are acked).
COMMIT_EVERY_S = 0.5
#: The second re-forward after an assignment comes half a zone warm-up later, at least this.
REFORWARD_MIN_S = 2.0


class MeterIngest(Service):
    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rt = rt
        s = rt.settings
        self.settings = s
        self.topics = (s.topics.meter_values, s.topics.meter_repartition)
        self.group_id = s.ingest_group
        self.max_records = s.ingest_max_records
        #: How far back a partition new to this worker is replayed at most (None: from the
        #: committed offset, however old).
        self.replay_bound_s: float | None = s.replay_bound_s()
        self.consumer: AIOKafkaConsumer | None = None
        self.positions: dict[TopicPartition, int] = {}  # next offset to apply
        self.owned: set[int] = set()
        self._assigned: set[int] | None = None  # Faust's newest assignment, not yet applied
        self._ready = asyncio.Event()  # Faust finished recovering tables for it
        self._lock = asyncio.Lock()
        self._last_zone_loads = 0.0
        self._behind = 0  # records fetched partitions still had after the last batch
        self._epoch = 0  # rebalances seen
        self._last_checkpoint = time.monotonic()
        self._last_forget = time.monotonic()
        self._reforward_due = 0.0  # monotonic time of the second re-forward; 0: none due

    # -- Faust's rebalance, as signals -----------------------------------------------------

    async def on_revoked(self) -> None:
        """Everything is revoked (eager rebalance): make what we hold durable and commit,
        then stop until the new assignment; state of partitions we keep stays in memory."""
        self._ready.clear()
        self._epoch += 1  # a periodic checkpoint under way gives up (this one covers it)
        async with self._lock:
            if self.owned:
                try:
                    await self.checkpoint_and_commit()
                except KafkaError as exc:  # the next owner replays from the last commit
                    log.warning("evgrid ingest: checkpoint on revocation failed: %r", exc)
            if self.consumer is not None:
                self.consumer.pause(*self.consumer.assignment())

    def on_assigned(self, station_partitions: set[int]) -> None:
        self._assigned = set(station_partitions)
        self._ready.clear()

    def on_recovered(self) -> None:
        self._ready.set()

    @property
    def assignment_pending(self) -> bool:
        """Faust assigned partitions this consumer has not taken up yet (`/health`)."""
        return self._assigned is not None

    # -- the loop --------------------------------------------------------------------------

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            max_partition_fetch_bytes=1024 * 1024,
            fetch_max_wait_ms=50,
            **s.kafka_client_kwargs(),
        )
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is None:
            return
        async with self._lock:
            if self.owned:
                try:
                    await self.checkpoint_and_commit()
                except Exception:  # the broker may be gone; the next owner replays
                    log.exception("evgrid ingest: final checkpoint failed")
            await self.consumer.stop()
            self.consumer = None

    @Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            try:
                await self._step()
            except KafkaError as exc:  # the broker is away: state stays, retry shortly
                log.warning("evgrid ingest: %r; retrying", exc)
                await self.sleep(1.0)

    async def _step(self) -> None:
        if self._assigned is not None:
            await self._ready.wait()
            async with self._lock:
                await self._apply_assignment()
        if not self.owned or self.consumer is None:
            await self.sleep(0.05)
            return
        batches = await self.fetch()
        if batches:
            async with self._lock:
                if self._assigned is None:  # not revoked while fetching
                    await self._apply(batches)
        now = time.monotonic()
        # Caught up, each batch's loads leave at once (a DR signal right behind a reading sees
        # it); behind, they are coalesced over the interval, so a backlog is not paid twice.
        caught_up = bool(batches) and self._behind == 0
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

    async def fetch(self) -> dict[TopicPartition, list]:
        assert self.consumer is not None
        return await self.consumer.getmany(timeout_ms=100)

    async def _apply(self, batches: dict[TopicPartition, list]) -> None:
        ingest = self.rt.ingest
        out = self.rt.publisher
        yield_every = self.settings.ingest_yield_every
        n = 0
        for tp, records in batches.items():
            metrics.INGEST_BATCHES.observe(len(records))
            for record in records:
                try:
                    ingest.on_meter_value(record)
                except Exception as exc:  # a bug must not make one message a crash loop
                    log.exception("evgrid: failed on %s[%s]@%s", record.topic,
                                  record.partition, record.offset)
                    out.deadletter(record, DecodeError("internal_error", repr(exc)))
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

    def owned_positions(self) -> dict[TopicPartition, int]:
        """The next offset to apply of each partition this consumer owns: what a commit
        after a complete checkpoint records."""
        return {tp: pos for tp, pos in self.positions.items() if tp.partition in self.owned}

    async def _flush_and_commit(self, offsets: dict[TopicPartition, int], written: int) -> None:
        assert self.consumer is not None
        metrics.CHECKPOINTS.inc()
        metrics.CHECKPOINT_STATIONS.inc(written)
        self.rt.ingest.flush_zone_loads()  # committed readings have reached their zones
        await self.commit_when_flushed(offsets)

    async def commit_when_flushed(self, offsets: dict[TopicPartition, int]) -> None:
        """Every output so far acknowledged (both producers), then the offsets committed."""
        assert self.consumer is not None
        await self.rt.publisher.flush()
        if offsets:
            await self.consumer.commit(offsets)

    async def _apply_assignment(self) -> None:
        """Keep the partitions that stay, load the new ones from their checkpoints, and
        start each new one at its committed offset (never further back than the replay
        bound), then tell every zone owner about our stations again."""
        assert self.consumer is not None
        owned = self._assigned or set()
        new = owned - self.owned
        self.partitions_changed(self.owned - owned, new)
        self.positions = {tp: pos for tp, pos in self.positions.items()
                          if tp.partition in owned}
        self.owned = owned
        tps = [TopicPartition(topic, p) for p in sorted(owned) for topic in self.topics]
        self.consumer.assign(tps)
        metrics.CONSUMER_LAG.clear()
        start = await self._start_offsets([tp for tp in tps if tp not in self.positions])
        self._assigned = None  # applied (a broker error above leaves it to be retried)
        for tp in tps:
            self.consumer.seek(tp, self.positions.get(tp, start.get(tp, 0)))
        for tp, pos in start.items():
            self.positions.setdefault(tp, pos)
        self.assigned(owned)
        await self.rt.publisher.drain()
        log.info("evgrid %s: owns partitions %s (%d new)", self.group_id, sorted(owned),
                 len(new))

    def partitions_changed(self, gone: set[int], new: set[int]) -> None:
        """Station state follows the partitions: dropped for those gone, rebuilt from their
        checkpoints for the new ones (those that stay keep theirs in memory)."""
        for partition in gone:
            self.rt.stations.drop_partition(partition)
        for partition in new:
            self.rt.stations.load_partition(partition)
            metrics.INGEST_PARTITIONS_LOADED.inc()

    def assigned(self, owned: set[int]) -> None:
        """Every zone owner hears about our stations again (a new owner is cold till then),
        and once more half a warm-up later: a new owner's Faust consumer can miss what was
        sent before it started reading (a CI run showed one zone owner lacking every
        station the other worker had re-sent; faust-streaming #216 and #221 describe
        Faust skipping or reordering events around a rebalance). The second copy lands
        while the new owner's zone is normally still cold (it waits a whole warm-up for
        members it has not heard), so it does not decide without those stations."""
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

    async def _start_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not tps:
            return {}
        assert self.consumer is not None
        bound_s = self.replay_bound_s
        # The end first: a partition with nothing inside the bound starts at that end, and
        # a record landing after it is newer than the bound, so the floor query finds it.
        # (Asked the other way round, a reading produced between the two was skipped.)
        end = await self.consumer.end_offsets(tps)
        beginning = await self.consumer.beginning_offsets(tps)
        floor = {} if bound_s is None else await self.consumer.offsets_for_times(
            {tp: int((time.time() - bound_s) * 1000) for tp in tps})
        out = {}
        for tp in tps:
            committed = await self.consumer.committed(tp)
            found = floor.get(tp)
            lowest = (beginning[tp] if bound_s is None
                      else found.offset if found is not None else end[tp])
            out[tp] = max(committed if committed is not None else beginning[tp], lowest)
        return out


def interleaved(partitions: Iterable[list]) -> Iterator[Any]:
    """Records of several partitions in turn (each partition's own order kept)."""
    for round_ in zip_longest(*partitions):
        yield from (record for record in round_ if record is not None)


class SignalIngest(MeterIngest):
    """DR signals on a consumer of their own, following the same assignment: Faust's one
    consumer carries the zone stage's station loads too, and a busy loop starves its
    per-message pipeline, so a signal queued there could wait seconds (measured). Here a
    signal is fetched as soon as it lands and handled at once; its offset is committed once
    its decisions are flushed (a redelivered signal is recognised and changes nothing)."""

    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        super().__init__(rt, **kwargs)
        s = self.settings
        self.topics = (s.topics.demand_response, s.topics.dr_repartition)
        self.group_id = f"{s.app_id}-dr-signals"
        self.replay_bound_s = None  # a signal is state: never skipped, however old
        # Small fetches, taken partition by partition in turn: a storm of signals on one
        # zone's partition never holds back a signal on another's.
        self.max_records = 100
        self._uncommitted = False

    async def fetch(self) -> dict[TopicPartition, list]:
        """What each partition has buffered, up to `max_records` each (aiokafka's own
        `getmany` drains the first partition's buffer before it looks at the next)."""
        assert self.consumer is not None
        out: dict[TopicPartition, list] = {}
        for tp in sorted(self.consumer.assignment()):
            out.update(await self.consumer.getmany(tp, timeout_ms=0,
                                                   max_records=self.max_records))
        if not out:
            out = await self.consumer.getmany(timeout_ms=100, max_records=self.max_records)
        return out

    async def _apply(self, batches: dict[TopicPartition, list]) -> None:
        for record in interleaved(batches.values()):
            try:
                self.rt.dr.on_message(record)
            except Exception as exc:  # a bug must not make one signal a crash loop
                log.exception("evgrid: failed on %s[%s]@%s", record.topic,
                              record.partition, record.offset)
                self.rt.publisher.deadletter(record, DecodeError("internal_error",
                                                                 repr(exc)))
        for tp, records in batches.items():
            self.positions[tp] = records[-1].offset + 1
        await self.rt.publisher.drain()  # the decisions go to the producer at once
        self._uncommitted = True

    @Service.task
    async def _committer(self) -> None:
        """Offsets are committed beside the fetch loop, never in front of it: the producer
        is shared with the meter ingest, and a flush behind a station checkpoint can take a
        second (measured: signals waited 1.5 s when the loop flushed after each batch)."""
        while not self.should_stop:
            await self.sleep(COMMIT_EVERY_S)
            if self._uncommitted and self._assigned is None and self.consumer is not None:
                self._uncommitted = False
                try:
                    await self.checkpoint_and_commit()
                except KafkaError as exc:  # a rebalance or the broker away: next time
                    self._uncommitted = True
                    log.warning("evgrid dr-signals: commit failed: %r", exc)
                except (AssertionError, AttributeError):
                    if not self.should_stop:  # at stop the consumer goes away under us
                        raise                 # (and on_stop commits itself)

    def checkpoint_due(self, now: float) -> bool:
        return False  # the committer's

    async def checkpoint_and_commit(self) -> None:
        """No state of its own (zones persist theirs): the offsets of signals whose decisions
        the producer holds, committed once it has flushed them."""
        assert self.consumer is not None
        offsets = self.owned_positions()
        # A signal a cold zone still holds is not done: never commit past it (a crash before
        # the zone warms up must redeliver it).
        for record in self.rt.zones.held_signals():
            tp = TopicPartition(record.topic, record.partition)
            if tp in offsets:
                offsets[tp] = min(offsets[tp], record.offset)
        await self.commit_when_flushed(offsets)

    async def send_zone_loads(self) -> None:
        pass  # the meter ingest's

    def partitions_changed(self, gone: set[int], new: set[int]) -> None:
        pass  # zones follow Faust's assignment themselves (ZoneStore.keep_only)

    def assigned(self, owned: set[int]) -> None:
        pass

    def housekeeping(self) -> None:
        pass
