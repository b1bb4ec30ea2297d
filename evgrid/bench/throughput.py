"""Throughput: readings/s one worker applies from a preloaded backlog, beside the two
ceilings measured on the same topic in the same run (raw aiokafka, Faust's no-op agent)."""

from __future__ import annotations

import time
from typing import Any

from evgrid.bench.baselines import faust_noop_baseline, raw_baseline
from evgrid.bench.harness import Bench, Phase, say
from evgrid.bench.load import preload, produce_mappings
from evgrid.topics import ensure_topics


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    settings = bench.settings("tput")
    await ensure_topics(settings)
    await produce_mappings(settings, s.stations, s.zones)
    say(f"  preloading {s.messages:,} readings ({s.stations:,} stations, "
        f"{s.stations * s.connectors:,} connectors, {s.zones} zones)")
    produce_rate = await preload(settings, s.messages, s.stations, s.connectors)
    say("  baseline 1: raw aiokafka getmany + orjson over the same topic")
    raw = await raw_baseline(settings, s.messages)
    say(f"    {raw:,.0f} msg/s")
    noop_count = min(s.noop_messages, s.messages)
    say(f"  baseline 2: a Faust app whose one agent does nothing ({noop_count:,} events)")
    noop = await faust_noop_baseline(settings, noop_count, bench.workdir)
    say(f"    {noop:,.0f} events/s")
    say(f"  one evgrid worker ({s.throughput_window_s:.0f} s window of the backlog)")
    started = time.monotonic()
    worker = await bench.worker(settings, "tput")
    try:
        measured = await bench.measure_rate([worker], s.messages, s.throughput_window_s,
                                            since=started)
        rss = worker.rss_mb()
    finally:
        worker.terminate()
    rate = measured["rate"]
    say(f"    {rate:,.0f} readings/s (raw ×{rate / raw:.3f}, Faust no-op ×{rate / noop:.2f})")
    return {
        "produce_rate": produce_rate, "raw_rate": raw, "faust_noop_rate": noop,
        "worker_rate": rate, "window_s": measured["seconds"], "ratio": rate / raw,
        "ratio_faust_noop": rate / noop, "worker_rss_mb": rss,
    }


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("readings/s applied, one worker", f"{r['worker_rate']:,.0f} "
         f"(over {r['window_s']:.0f} s of a preloaded backlog)"),
        ("baseline: raw aiokafka getmany + orjson", f"{r['raw_rate']:,.0f} msg/s"),
        ("baseline: Faust agent that does nothing", f"{r['faust_noop_rate']:,.0f} events/s"),
        ("worker / raw  ·  worker / Faust no-op",
         f"{r['ratio']:.3f}  ·  {r['ratio_faust_noop']:.2f}"),
        ("preload (producer) rate", f"{r['produce_rate']:,.0f} msg/s"),
    ]


PHASE = Phase("throughput", "readings/s one worker applies, beside raw aiokafka and a no-op "
              "Faust agent", run, rows)
