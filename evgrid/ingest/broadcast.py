"""A consumer of whole topics on every worker: no group, nothing committed (the log is the
state, or the message is area-wide). Compacted configuration is read back from its beginning;
`live` tells a record read back at start from one that arrived since, so a bad record is
dead-lettered once, when it first came.

`SiteIngest` and `FrequencyIngest` are its two kinds; each says which partitions it reads from
where (`assign`) and what it does after a batch (`after_batch`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings

log = logging.getLogger(__name__)


class Broadcast(Service):
    #: For the log lines.
    name = "broadcast"
    #: How long a fetch waits when nothing is there.
    fetch_wait_ms = 100

    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.out = publisher
        self.dispatch = dispatch
        self.consumer: AIOKafkaConsumer | None = None
        #: Per (topic, partition) read back from the beginning: the end offset seen at start.
        self.read_back_to: dict[tuple[str, int], int] = {}

    def live(self, record: Record) -> bool:
        """Arrived since this worker started (or from a topic that is not read back)."""
        return record.offset >= self.read_back_to.get((record.topic, record.partition), 0)

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_wait_ms,
            **s.kafka_client_kwargs())
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of a topic created with the co-partitioned ones."""
        return [TopicPartition(topic, p) for p in range(self.settings.partitions)]

    async def read_back(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Read `tps` from their beginning; returns the end offsets of those not empty.
        Explicit seeks, not `seek_to_beginning`: aiokafka's offset resets are asynchronous,
        and one for other partitions (`from_end`) could leave these at the end."""
        assert self.consumer is not None
        starts = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            self.consumer.seek(tp, starts[tp])
        self.read_back_to.update({(tp.topic, tp.partition): end for tp, end in ends.items()})
        return {tp: end for tp, end in ends.items() if end > starts[tp]}

    async def from_end(self, tps: list[TopicPartition]) -> None:
        """Read `tps` from the end seen now: only what arrives from now on."""
        assert self.consumer is not None
        for tp, end in (await self.consumer.end_offsets(tps)).items():
            self.consumer.seek(tp, end)

    async def assign(self) -> None:
        raise NotImplementedError

    async def after_batch(self) -> None:
        """Called after every fetch, with or without records."""

    @Service.task
    async def _run(self) -> None:
        assigned = False
        while not self.should_stop:
            try:
                if not assigned:
                    await self.assign()
                    assigned = True
                assert self.consumer is not None
                batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batches.values():
                    for record in records:
                        self.out.guarded(self.dispatch, record)
                if batches:
                    await self.out.drain()
                await self.after_batch()
            except KafkaError as exc:
                log.warning("evgrid %s: %r; retrying", self.name, exc)
                await self.sleep(1.0)
            except Exception:  # what waits on this consumer must not wait for ever
                if self.should_stop:
                    return
                log.exception("evgrid %s: failed; starting over", self.name)
                assigned = False
                await self.sleep(1.0)
