"""The sites consumer: every partition of `config.sites`, from its beginning, on every worker
(no group, nothing committed: the log is the state, and it is small).

`loaded` is set once every partition has been read up to the end offset seen at start: the
mappings and the station rows wait for it, so a station's site is known before its mapping is
checked and before its zone decides anything."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings

log = logging.getLogger(__name__)


class SiteIngest(Service):
    def __init__(self, settings: WorkerSettings, publisher: Publisher,
                 dispatch: Callable[[Record], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.out = publisher
        self.dispatch = dispatch
        self.topic = settings.topics.sites
        self.consumer: AIOKafkaConsumer | None = None
        self.loaded = asyncio.Event()
        #: End offsets seen at start: a record below is read back, not live.
        self.read_back_to: dict[int, int] = {}

    def live(self, record: Record) -> bool:
        return record.offset >= self.read_back_to.get(record.partition, 0)

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=100, **s.kafka_client_kwargs())
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def _assign(self) -> dict[TopicPartition, int]:
        assert self.consumer is not None
        # Created with every co-partitioned topic, so it has EVGRID_PARTITIONS partitions.
        tps = [TopicPartition(self.topic, p) for p in range(self.settings.partitions)]
        self.consumer.assign(tps)
        ends = await self.consumer.end_offsets(tps)
        await self.consumer.seek_to_beginning(*tps)
        self.read_back_to = {tp.partition: end for tp, end in ends.items()}
        return {tp: end for tp, end in ends.items() if end > 0}

    @Service.task
    async def _run(self) -> None:
        targets: dict[TopicPartition, int] | None = None
        while not self.should_stop:
            try:
                if targets is None:
                    targets = await self._assign()
                assert self.consumer is not None
                batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batches.values():
                    for record in records:
                        self.out.guarded(self.dispatch, record)
                if batches:
                    await self.out.drain()
                if not self.loaded.is_set():
                    for tp, end in list(targets.items()):
                        if await self.consumer.position(tp) >= end:
                            del targets[tp]
                    if not targets:
                        log.info("evgrid sites: read back (%s)", self.topic)
                        self.loaded.set()
            except KafkaError as exc:
                log.warning("evgrid sites: %r; retrying", exc)
                await self.sleep(1.0)
            except Exception:  # the mappings and rows wait for the sites: never give up
                if self.should_stop:
                    return
                log.exception("evgrid sites: failed; starting over")
                targets = None
                await self.sleep(1.0)
