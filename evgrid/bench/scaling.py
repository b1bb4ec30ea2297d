"""Scaling: readings/s with one worker and with two in one consumer group, each over a
window of a backlog produced once the group has settled (a rebalance in the middle would
replay and muddle the figure)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from evgrid.bench.harness import Bench, Phase, say
from evgrid.bench.load import preload, produce_mappings
from evgrid.broker.local import free_port
from evgrid.settings import WorkerSettings
from evgrid.topics import ensure_topics


async def group_of(bench: Bench, settings: WorkerSettings, n: int) -> list:
    workers = [
        bench.spawn(WorkerSettings.model_validate({**settings.model_dump(),
                                             "data_dir": settings.data_dir / str(i),
                                             "web_port": free_port()}), f"scale{n}-{i}")
        for i in range(n)
    ]
    for worker in workers:
        await worker.wait_ready(timeout=120)
    if n > 1:  # the first worker was ready before the second joined: let the group settle
        await asyncio.sleep(2.0)
        for worker in workers:
            await worker.wait_ready(timeout=120)
    return workers


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    out: dict[str, Any] = {}
    for n in (1, 2):
        settings = bench.settings(f"scale{n}")
        await ensure_topics(settings)
        await produce_mappings(settings, s.stations, s.zones)
        workers = await group_of(bench, settings, n)
        try:
            started = time.monotonic()
            await preload(settings, s.scaling_messages, s.stations, s.connectors,
                          progress=False)
            measured = await bench.measure_rate(workers, s.scaling_messages,
                                                s.scaling_window_s, since=started)
        finally:
            for worker in workers:
                worker.terminate()
        out[f"workers_{n}"] = measured["rate"]
        say(f"  {n} worker(s): {measured['rate']:,.0f} readings/s")
    out["speedup"] = out["workers_2"] / out["workers_1"]
    return out


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    return [("readings/s, 1 worker / 2 workers",
             f"{r['workers_1']:,.0f} / {r['workers_2']:,.0f} ({r['speedup']:.2f}×)")]


PHASE = Phase("scaling", "readings/s with 1 and with 2 workers", run, rows)
