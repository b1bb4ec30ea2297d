"""The frequency consumer: every partition of `grid.frequency` and of
`config.frequency_programs`, on every worker (a broadcast: no group, nothing committed).

Frequency is area-wide and few messages, and every worker owning a participating zone needs
each one at once, so it has a consumer of its own that never waits behind meter values.
Programs are read from their beginning (the compacted log is the state); measurements from
the end at start (an old measurement says nothing about the grid now)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mode import Service

from evgrid.ingest.broadcast import Broadcast


class FrequencyIngest(Broadcast):
    name = "frequency"
    #: The measurement path's latency floor is the broker's fetch, not this wait.
    fetch_wait_ms = 10

    def __init__(self, *args: Any, zones: Callable[[], Awaitable[None]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The handler's loop that gives each zone its turn (`FrequencyHandler.run`).
        self.zones = zones

    @Service.task
    async def _zones(self) -> None:
        if self.zones is not None:
            await self.zones()

    async def assign(self) -> None:
        assert self.consumer is not None
        t = self.settings.topics
        programs = self.partitions(t.frequency_programs)
        measurements = self.partitions(t.frequency)
        self.consumer.assign(programs + measurements)
        await self.read_back(programs)
        await self.from_end(measurements)
