"""The frequency consumer: every partition of `grid.frequency` and of
`config.frequency_programs`, on every worker (a broadcast: no group, nothing committed).

Frequency is area-wide and few messages, and every worker owning a participating zone needs
each one at once, so it has a consumer of its own that never waits behind meter values.
Programs are read from their beginning (the compacted log is the state); measurements from
the end at start (an old measurement says nothing about the grid now)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings

log = logging.getLogger(__name__)

#: How long a fetch waits for a measurement when none is there: the measurement path's
#: latency floor is set by the broker's fetch, not by this.
FETCH_WAIT_MS = 10


class FrequencyIngest(Service):
    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.out = publisher
        self.dispatch = dispatch
        self.consumer: AIOKafkaConsumer | None = None
        #: Programs' end offsets seen at start: a record below is read back, not live.
        self.read_back_to: dict[int, int] = {}

    def live(self, record: Record) -> bool:
        """Measurements are always live; a program read back at start is not."""
        if record.topic != self.settings.topics.frequency_programs:
            return True
        return record.offset >= self.read_back_to.get(record.partition, 0)

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="latest", fetch_max_wait_ms=FETCH_WAIT_MS,
            **s.kafka_client_kwargs())
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def _assign(self) -> None:
        assert self.consumer is not None
        t, n = self.settings.topics, self.settings.partitions
        programs = [TopicPartition(t.frequency_programs, p) for p in range(n)]
        measurements = [TopicPartition(t.frequency, p) for p in range(n)]
        self.consumer.assign(programs + measurements)
        ends = await self.consumer.end_offsets(programs)
        self.read_back_to = {tp.partition: end for tp, end in ends.items()}
        await self.consumer.seek_to_beginning(*programs)
        await self.consumer.seek_to_end(*measurements)

    @Service.task
    async def _run(self) -> None:
        assigned = False
        while not self.should_stop:
            try:
                if not assigned:
                    await self._assign()
                    assigned = True
                assert self.consumer is not None
                batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batches.values():
                    for record in records:
                        self.out.guarded(self.dispatch, record)
                if batches:
                    await self.out.drain()
            except KafkaError as exc:
                log.warning("evgrid frequency: %r; retrying", exc)
                await self.sleep(1.0)
            except Exception:  # a worker without frequency response is a worker disarmed
                if self.should_stop:
                    return
                log.exception("evgrid frequency: failed; starting over")
                assigned = False
                await self.sleep(1.0)
