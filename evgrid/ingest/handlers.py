"""Consumers that hand each record to a handler: DR signals, and the zone stage's station loads.

Both follow Faust's assignment like the meter ingest (`AssignedConsumer`), on consumers of
their own, so nothing queues in front of them: a signal is fetched as soon as it lands and
handled at once, and the zone stage no longer goes through Faust's per-event path (a CI run
showed a new zone owner there never applying the station loads sent just before it started
reading). Offsets are committed beside the fetch loop, never in front of it, once the
handled records' outputs are flushed; a redelivered record changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid.ingest.consumer import AssignedConsumer
from evgrid.publisher import Record

if TYPE_CHECKING:
    from evgrid.agents.runtime import Runtime

log = logging.getLogger(__name__)

#: How often a handler consumer commits what it has handled (once its outputs are acked).
COMMIT_EVERY_S = 0.5


def interleaved(partitions: Iterable[list]) -> Iterator[Any]:
    """Records of several partitions in turn (each partition's own order kept)."""
    for round_ in zip_longest(*partitions):
        yield from (record for record in round_ if record is not None)


class HandledIngest(AssignedConsumer):
    """Small fetches, taken partition by partition in turn (a storm on one partition never
    holds back a record on another's), each record handed to `handle`."""

    #: Records per fetch and partition.
    max_records = 100
    #: Records handled between two turns given to the loop (and to the control loop).
    yield_every = 100

    def __init__(self, rt: Runtime, topics: tuple[str, ...], group_id: str,
                 replay_bound_s: float | None, handle: Callable[[Record], None],
                 **kwargs: Any) -> None:
        super().__init__(rt, topics, group_id, replay_bound_s, **kwargs)
        self.handle = handle
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
        out = self.rt.publisher
        for n, record in enumerate(interleaved(batches.values()), start=1):
            out.guarded(self.handle, record)
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
        second (measured: signals waited 1.5 s when the loop flushed after each batch)."""
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
    skipped however old (no replay bound)."""

    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        s = rt.settings
        super().__init__(rt, (s.topics.demand_response, s.topics.dr_repartition),
                         s.dr_signals_group, None, rt.dr.on_message, **kwargs)

    async def checkpoint_and_commit(self) -> None:
        assert self.consumer is not None
        offsets = self.owned_positions()
        # A signal a cold zone still holds is not done: never commit past it (a crash before
        # the zone warms up must redeliver it).
        for record in self.rt.zones.held_signals():
            tp = TopicPartition(record.topic, record.partition)
            if tp in offsets:
                offsets[tp] = min(offsets[tp], record.offset)
        await self.commit_when_flushed(offsets)


class ZoneIngest(HandledIngest):
    """The zone stage's input: what the station sides say about each zone's stations.

    A partition new to its group starts inside the meter replay bound: older station loads
    are stale, and every station side re-sends its stations' membership on each assignment.
    """

    #: A `loads` message carries every station of a zone that changed (100 in the bench):
    #: ten are ~1,000 station updates, ~10 ms of loop.
    yield_every = 10

    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        s = rt.settings
        super().__init__(rt, (s.topics.station_load,), s.zone_stage_group,
                         s.replay_bound_s(), rt.stage.on_message, **kwargs)
