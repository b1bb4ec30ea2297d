"""The sites consumer: every partition of `config.sites`, from its beginning, on every worker
(no group, nothing committed: the log is the state, and it is small).

`loaded` is set once every partition has been read up to the end offset seen at start: the
mappings and the station rows wait for it, so a station's site is known before its mapping is
checked and before its zone decides anything."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from evgrid.ingest.broadcast import Broadcast

log = logging.getLogger(__name__)


class SiteIngest(Broadcast):
    name = "sites"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.topic = self.settings.topics.sites
        self.loaded = asyncio.Event()
        self._targets: dict[TopicPartition, int] = {}

    async def assign(self) -> None:
        assert self.consumer is not None
        tps = self.partitions(self.topic)
        self.consumer.assign(tps)
        self._targets = await self.read_back(tps)

    async def after_batch(self) -> None:
        if self.loaded.is_set():
            return
        assert self.consumer is not None
        for tp, end in list(self._targets.items()):
            if await self.consumer.position(tp) >= end:
                del self._targets[tp]
        if not self._targets:
            log.info("evgrid sites: read back (%s)", self.topic)
            self.loaded.set()
