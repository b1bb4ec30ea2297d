"""Memory: the worker's resident set (its own /proc entry, so the generator in the bench
process never counts) when idle and after it holds each fleet size (2 connectors a station;
the last point is 1,000,000 connectors). The fleet is produced in streamed batches, one
mapping per station and one reading per connector, while the worker consumes it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from evgrid.bench.harness import Bench, LagProbe, Phase, say
from evgrid.bench.load import preload, produce_mappings
from evgrid.bench.stats import metric_sum
from evgrid.process import WorkerProcess
from evgrid.settings import WorkerSettings
from evgrid.topics import ensure_topics

CONNECTORS_PER_STATION = 2
#: After the readings are taken, how long to wait at most for the zone side to catch up
#: (lag 0): an RSS read before then leaves part of the zone side out.
SETTLE_S = 150.0
#: After the zone side settled, how much longer than a checkpoint interval to wait before the
#: steady-state reading (the checkpoint itself takes a moment).
STEADY_MARGIN_S = 5.0


async def settle(bench: Bench, worker: WorkerProcess, settings: WorkerSettings) -> dict[str, Any]:
    """Meter values caught up (the worker's own lag gauge), the mappings consumed (their
    committed offsets) and the station rows applied by the zone side (its own lag gauge), or
    give up after SETTLE_S; says how long it took, or which lag was left."""
    t = settings.topics
    step = max(bench.sizes.poll_s, 0.5)
    worker_lag = zone_side_lag = -1.0
    start = time.monotonic()
    async with LagProbe(settings) as probe:
        for _ in range(int(SETTLE_S / step)):
            _, text = await worker.get("/metrics")
            worker_lag = metric_sum(text, "evgrid_consumer_lag")
            zone_side_lag = (await probe.lag(t.station_zones)
                             + metric_sum(text, "evgrid_zone_rows_lag"))
            if worker_lag == 0 and zone_side_lag == 0:
                break
            await asyncio.sleep(step)
    return {"settled": worker_lag == 0 and zone_side_lag == 0, "meter_lag": worker_lag,
            "mapping_and_zone_row_lag": zone_side_lag,
            "settle_s": round(time.monotonic() - start, 1)}


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    settings = bench.settings("mem", checkpoint_interval_s=s.memory_checkpoint_s)
    await ensure_topics(settings)
    worker = await bench.worker(settings, "mem")
    out: dict[str, Any] = {"idle_rss_mb": worker.rss_mb(), "points": []}
    say(f"  idle: RSS {out['idle_rss_mb']:.0f} MB")
    stations_loaded = 0
    try:
        for connectors in s.memory_connectors:
            stations = connectors // CONNECTORS_PER_STATION
            new = stations - stations_loaded
            say(f"  building the fleet to {connectors:,} connectors ({new:,} more stations)")
            await produce_mappings(settings, new, s.zones, offset=stations_loaded)
            await preload(settings, new * CONNECTORS_PER_STATION, new, CONNECTORS_PER_STATION,
                          offset=stations_loaded)
            stations_loaded = stations
            taken, seconds = await bench.wait_applied([worker], connectors, s.memory_deadline_s)
            complete = taken >= connectors
            settled = (await settle(bench, worker, settings) if complete
                       else {"settled": False})
            point = {"connectors": connectors, "readings_taken": taken, "complete": complete,
                     **settled, "seconds": seconds, "rss_mb": worker.rss_mb()}
            say(f"    {connectors:,} connectors: RSS {point['rss_mb']:.0f} MB"
                + ("" if complete else f" (only {taken:,.0f} readings taken in "
                   f"{s.memory_deadline_s:.0f} s: the figure is for that many)"))
            # Steady state: one periodic checkpoint later (it hands freed memory back), the
            # garbage of the burst that built the fleet is no longer counted.
            interval = settings.checkpoint_interval_s
            await asyncio.sleep(interval + min(STEADY_MARGIN_S, interval))
            point["steady_rss_mb"] = worker.rss_mb()
            say(f"    one checkpoint later: RSS {point['steady_rss_mb']:.0f} MB")
            out["points"].append(point)
    finally:
        worker.terminate()
    return out


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("worker RSS, idle", f"{r['idle_rss_mb']:,.0f} MB")]
    for p in r["points"]:
        if not p["complete"]:
            note = (f" (incomplete: {p['readings_taken']:,.0f} readings taken within "
                    f"{p['seconds']:.0f} s)")
        else:
            note = f" (taken in {p['seconds']:.0f} s" + (
                f"; zone side settled {p['settle_s']:.0f} s after the last reading)"
                if p["settled"] else f"; {SETTLE_S:.0f} s later still "
                f"{p['meter_lag']:,.0f} readings and {p['mapping_and_zone_row_lag']:,} "
                "mappings/zone rows behind)")
        out.append((f"worker RSS, {p['connectors']:,} connectors",
                     f"{p['rss_mb']:,.0f} MB{note}"))
        out.append((f"worker RSS, {p['connectors']:,} connectors, one checkpoint later",
                     f"{p['steady_rss_mb']:,.0f} MB"))
    return out


PHASE = Phase("memory", "worker RSS at idle and per fleet size, up to 1,000,000 connectors",
              run, rows)
