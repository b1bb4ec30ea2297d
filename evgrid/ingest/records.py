"""Consumers that take records one at a time, partitions in turn: DR signals, zone mappings
with command outcomes, and station rows.

Each follows Faust's assignment like the meter ingest (`AssignedConsumer`), on a consumer of
its own, so nothing queues in front of it: a signal is fetched as soon as it lands and handled
at once, and a burst of mappings neither waits behind meter values nor holds them up. Offsets
are committed beside the fetch loop, never in front of it, once the handled records' outputs
are flushed; a redelivered record changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import zip_longest
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid import metrics
from evgrid.ingest.consumer import AssignedConsumer
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings
from evgrid.state.zones import ZoneStore

log = logging.getLogger(__name__)

#: How often a handler consumer commits what it has handled (once its outputs are acked).
COMMIT_EVERY_S = 0.5


def interleaved(partitions: Iterable[list]) -> Iterator[Any]:
    """Records of several partitions in turn (each partition's own order kept)."""
    for round_ in zip_longest(*partitions):
        yield from (record for record in round_ if record is not None)


class HandledIngest(AssignedConsumer):
    """Small fetches, taken partition by partition in turn (a storm on one partition never
    holds back a record on another's), each record through the input path."""

    #: Records per fetch and partition.
    max_records = 100
    #: Records handled between two turns given to the loop (and to the control loop).
    yield_every = 100
    #: Whether a fetched batch waits while urgent control work is under way
    #: (`Publisher.urgent`), as meter values do.
    waits_while_urgent = False

    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], topics: tuple[str, ...],
                 group_id: str | None, replay_bound_s: float | None,
                 wait_for: asyncio.Event | None = None, **kwargs: Any) -> None:
        super().__init__(settings, publisher, dispatch, topics, group_id, replay_bound_s,
                         **kwargs)
        self._uncommitted = False
        #: What must be read before this consumer's first records (the sites).
        self.wait_for = wait_for

    async def _start_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.wait_for is not None:
            await self.wait_for.wait()
        return await super()._start_offsets(tps)

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
        out = self.out
        if self.waits_while_urgent:
            await out.calm()
        for n, record in enumerate(interleaved(batches.values()), start=1):
            out.guarded(self.dispatch, record)
            if n % self.yield_every == 0:
                await out.drain()
                await out.control_first()
        for tp, records in batches.items():
            self.positions[tp] = records[-1].offset + 1
        await out.drain()  # the decisions go to the producer at once
        self._uncommitted = True

    @Service.task
    async def _committer(self) -> None:
        """Offsets are committed beside the fetch loop, never in front of it: the producer
        is shared with the meter ingest, and a flush behind a station checkpoint can take a
        second, which a signal would otherwise wait for."""
        while not self.should_stop:
            await self.sleep(COMMIT_EVERY_S)
            if self._uncommitted and self._assigned is None and self.consumer is not None:
                self._uncommitted = False
                try:
                    await self.checkpoint_and_commit()
                except KafkaError as exc:  # a rebalance or the broker away: next time
                    self._uncommitted = True
                    log.warning("evgrid %s: commit failed: %r", self.group_id, exc)
                except (AssertionError, AttributeError):
                    if not self.should_stop:  # at stop the consumer goes away under us
                        raise                 # (and on_stop commits itself)

    async def checkpoint_and_commit(self) -> None:
        """No state of its own (zones persist theirs): the offsets of the records handled,
        committed once the producers have flushed their outputs."""
        await self.commit_when_flushed(self.owned_positions())


class SignalIngest(HandledIngest):
    """DR signals, from the first moment they land; a signal is state, so it is never
    skipped however old (no replay bound). A signal a cold zone still holds is not done: the
    commit never passes it (a crash before the zone warms up must redeliver it)."""

    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], zones: ZoneStore, **kwargs: Any) -> None:
        t, i = settings.topics, settings.internal_topics
        super().__init__(settings, publisher, dispatch, (t.demand_response, i.dr_repartition),
                         settings.dr_signals_group, None, **kwargs)
        self.zones = zones

    async def checkpoint_and_commit(self) -> None:
        assert self.consumer is not None
        offsets = self.owned_positions()
        for record in self.zones.held_signals():
            tp = TopicPartition(record.topic, record.partition)
            if tp in offsets:
                offsets[tp] = min(offsets[tp], record.offset)
        await self.commit_when_flushed(offsets)


class StationConfigIngest(HandledIngest):
    """Zone mappings and command outcomes, both keyed by station: state, never skipped."""

    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], **kwargs: Any) -> None:
        t, i = settings.topics, settings.internal_topics
        super().__init__(settings, publisher, dispatch,
                         (t.station_zones, i.station_zones_repartition, t.outcomes,
                          i.outcomes_repartition),
                         settings.station_config_group, None, **kwargs)


class RowIngest(HandledIngest):
    """The zone side's input: the station-rows topic, a compacted log of each station's row.

    It commits nothing: a partition new to this worker is read back from its beginning, and
    its zones stay cold (`ZoneStore.loading`) until the end offset seen at assignment is
    reached; `on_loaded` is told then. Partitions that stay keep their position and state.
    """

    #: A read-back is a whole partition of rows: larger fetches than a signal's, given way
    #: every hundred rows (a few milliseconds of loop).
    max_records = 500
    yield_every = 100
    #: Rows are meter values one stage on: while a frequency activation goes over its
    #: zones they wait, as the meter values do, instead of taking its turns between zones.
    waits_while_urgent = True

    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], zones: ZoneStore,
                 on_loaded: Callable[[int], None], **kwargs: Any) -> None:
        super().__init__(settings, publisher, dispatch, (settings.internal_topics.station_rows,),
                         None, None, **kwargs)
        self.zones = zones
        self.on_loaded = on_loaded
        self.targets: dict[TopicPartition, int] = {}  # end offsets a read-back must reach

    def partitions_changed(self, gone: set[int], new: set[int]) -> None:
        """Every partition the zone store is (re)loading is read from its beginning, new to
        this consumer or not (a partition lost and regained between two of its
        assignments)."""
        for tp in [tp for tp in self.positions if tp.partition in self.zones.loading]:
            del self.positions[tp]
        self.targets = {tp: end for tp, end in self.targets.items()
                        if tp.partition in self.zones.loading}

    async def _start_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.wait_for is not None:
            await self.wait_for.wait()
        if not tps:
            return {}
        assert self.consumer is not None
        # The end first: everything written before the assignment is below it.
        self.targets.update(await self.consumer.end_offsets(tps))
        return dict(await self.consumer.beginning_offsets(tps))

    async def after_fetch(self, fetched: bool) -> None:
        if self._assigned is not None or self.consumer is None:
            return
        behind = 0
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                behind += max(0, end - self.positions.get(tp, end))
        metrics.ZONE_ROWS_LAG.set(behind)
        if not self.targets:
            return
        for tp, end in list(self.targets.items()):
            if await self.consumer.position(tp) >= end:
                del self.targets[tp]
                if tp.partition in self.zones.loading:
                    self.on_loaded(tp.partition)
        metrics.ZONE_PARTITIONS_LOADING.set(len(self.targets))
        await self.out.drain()

    async def checkpoint_and_commit(self) -> None:
        """The log is the state: nothing to commit."""
