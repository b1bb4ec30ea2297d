"""A batch consumer beside Faust's that follows Faust's partition assignment.

Faust's per-event path tops out near 14k messages/s with an agent that does nothing, and every
topic it consumes shares one consumer and one conductor. Every input of the worker — meter
values, zone mappings and command outcomes, DR signals, station rows — is fetched by one of
these instead: it owns exactly the partitions of `config.station_zones` Faust gives this
worker (the co-partitioned topics' partitions), is paused on revocation and reassigned once
Faust has recovered the tables, hands each record to the one input path, and commits under its
own group id only what it has applied and flushed (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid.logs import broker_connected
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings

log = logging.getLogger(__name__)

#: How long a stopping consumer waits to checkpoint and commit what it has applied: its
#: outputs must be acknowledged first, which waits while the broker is away (then the
#: shorter bound; a large checkpoint needs the longer one).
FINAL_COMMIT_S = 60.0
FINAL_COMMIT_AWAY_S = 5.0


class AssignedConsumer(Service):
    """The assignment-following loop; subclasses say what a batch does (`_apply`), what
    follows a fetch (`after_fetch`) and what a commit covers (`checkpoint_and_commit`)."""

    #: Records one fetch returns at most.
    max_records = 2000

    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], topics: tuple[str, ...],
                 group_id: str | None, replay_bound_s: float | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.out = publisher
        #: The input path: every record fetched goes through it.
        self.dispatch = dispatch
        self.topics = topics
        self.group_id = group_id
        #: How far back a partition new to this worker is replayed at most (None: from the
        #: committed offset, however old).
        self.replay_bound_s = replay_bound_s
        self.consumer: AIOKafkaConsumer | None = None
        self.positions: dict[TopicPartition, int] = {}  # next offset to apply
        self.owned: set[int] = set()
        self._assigned: set[int] | None = None  # Faust's newest assignment, not yet applied
        self._ready = asyncio.Event()  # Faust finished recovering tables for it
        self._lock = asyncio.Lock()
        self._epoch = 0  # rebalances seen

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
                    log.warning("evgrid %s: commit on revocation failed: %r", self.group_id,
                                exc)
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
        away = broker_connected() is False
        try:  # commits wait for the broker; a stop does not wait for ever
            await asyncio.wait_for(self._final_commit(),
                                   FINAL_COMMIT_AWAY_S if away else FINAL_COMMIT_S)
        except TimeoutError:
            log.warning("evgrid %s: no final commit (the broker is away?); the next owner "
                        "replays from the last one", self.group_id)
        await self.consumer.stop()
        self.consumer = None

    async def _final_commit(self) -> None:
        async with self._lock:
            if self.owned:
                try:
                    await self.checkpoint_and_commit()
                except Exception:  # the broker may be gone; the next owner replays
                    log.exception("evgrid %s: final commit failed", self.group_id)

    @Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            try:
                await self._step()
            except KafkaError as exc:  # the broker is away: state stays, retry shortly
                log.warning("evgrid %s: %r; retrying", self.group_id, exc)
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
        await self.after_fetch(bool(batches))

    async def fetch(self) -> dict[TopicPartition, list]:
        assert self.consumer is not None
        return await self.consumer.getmany(timeout_ms=100)

    async def _apply(self, batches: dict[TopicPartition, list]) -> None:
        raise NotImplementedError

    async def after_fetch(self, fetched: bool) -> None:
        """What the loop does after each fetch, whether it brought records or not."""

    async def checkpoint_and_commit(self) -> None:
        raise NotImplementedError

    # -- commits ---------------------------------------------------------------------------

    def owned_positions(self) -> dict[TopicPartition, int]:
        """The next offset to apply of each partition this consumer owns: what a commit
        after a complete checkpoint records."""
        return {tp: pos for tp, pos in self.positions.items() if tp.partition in self.owned}

    async def commit_when_flushed(self, offsets: dict[TopicPartition, int]) -> None:
        """Every output so far acknowledged (both producers), then the offsets committed."""
        assert self.consumer is not None
        await self.out.flush()
        if offsets:
            await self.consumer.commit(offsets)

    # -- assignment ------------------------------------------------------------------------

    async def _apply_assignment(self) -> None:
        """Keep the partitions that stay, start each new one at its committed offset (never
        further back than the replay bound), and let the subclass follow."""
        assert self.consumer is not None
        owned = self._assigned or set()
        new = owned - self.owned
        self.partitions_changed(self.owned - owned, new)
        self.positions = {tp: pos for tp, pos in self.positions.items()
                          if tp.partition in owned}
        self.owned = owned
        tps = [TopicPartition(topic, p) for p in sorted(owned) for topic in self.topics]
        self.consumer.assign(tps)
        start = await self._start_offsets([tp for tp in tps if tp not in self.positions])
        self._assigned = None  # applied (a broker error above leaves it to be retried)
        for tp in tps:
            self.consumer.seek(tp, self.positions.get(tp, start.get(tp, 0)))
        for tp, pos in start.items():
            self.positions.setdefault(tp, pos)
        self.assigned(owned)
        await self.out.drain()
        log.info("evgrid %s: owns partitions %s (%d new)", self.group_id, sorted(owned),
                 len(new))

    def partitions_changed(self, gone: set[int], new: set[int]) -> None:
        """State that follows the partitions (none here)."""

    def assigned(self, owned: set[int]) -> None:
        """What follows a new assignment, once the consumer has taken it up (nothing here)."""

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
