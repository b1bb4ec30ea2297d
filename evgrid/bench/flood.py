"""Flood before the picture settles: a fleet is mapped, a second later meter values flood in
faster than one worker applies them, and zones are curtailed while the mappings may still be
arriving. Every station of a curtailed zone must be commanded, and soon: the zone's picture
(members, limits, loads) must not wait behind the meter values.

Reported per signal: how many of the zone's stations got a SET, and the time from the signal
produced to the zone's last first-SET seen by a consumer (end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from evgrid.bench.harness import Bench, Phase, say
from evgrid.bench.load import Pace, consumer, produce_mappings, producer, stream_readings
from evgrid.bench.load import zone_id as bench_zone
from evgrid.bench.stats import percentiles
from evgrid.process import WorkerProcess
from evgrid.settings import WorkerSettings
from evgrid.timeutil import iso
from evgrid.topics import ensure_topics


@dataclass(frozen=True)
class FloodPlan:
    zones: int = 100
    per_zone: int = 100
    rate: float = 60_000.0  # readings/s offered
    lead_s: float = 1.0  # the flood starts this long after the mappings are produced
    signals: int = 10
    signal_gap_s: float = 3.0
    first_signal_s: float = 1.0  # after the flood starts
    timeout_s: float = 60.0


async def flood(settings: WorkerSettings, plan: FloodPlan) -> dict[str, Any]:
    """Run the plan against a worker already up on `settings`; returns per-signal figures."""
    t = settings.topics
    stations = plan.zones * plan.per_zone
    commands = consumer(settings, t.commands, auto_offset_reset="earliest")
    signals = producer(settings, acks="all")
    await commands.start()
    await signals.start()
    stop = asyncio.Event()
    sent: dict[str, tuple[str, float]] = {}  # signal_id -> (zone, produced at)
    first_set: dict[str, dict[str, float]] = {}  # signal_id -> station -> first SET seen
    try:
        await produce_mappings(settings, stations, plan.zones)
        await asyncio.sleep(plan.lead_s)
        load = asyncio.create_task(stream_readings(settings, Pace(plan.rate), stations, stop))
        watch = asyncio.create_task(_watch(commands, sent, first_set))
        await asyncio.sleep(plan.first_signal_s)
        for i in range(plan.signals):
            signal_id, zone = f"FLOOD-{i}", bench_zone(i, plan.zones)
            now = time.time()
            event = {"signal_id": signal_id, "zone_id": zone, "signal_type": "CURTAIL",
                     "target_reduction_pct": 30.0, "start_ts": iso(now),
                     "end_ts": iso(now + 3600), "priority": 2, "received_ts": iso(now)}
            sent[signal_id] = (zone, time.monotonic())
            await signals.send_and_wait(t.demand_response, orjson.dumps(event),
                                        key=zone.encode())
            await asyncio.sleep(plan.signal_gap_s)
        deadline = time.monotonic() + plan.timeout_s
        while time.monotonic() < deadline and not all(
                len(first_set.get(s, ())) >= plan.per_zone for s in sent):
            await asyncio.sleep(0.2)
        stop.set()
        offered = await load
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    finally:
        stop.set()
        await commands.stop()
        await signals.stop()
    per_signal = {}
    for signal_id, (zone, at) in sent.items():
        seen = first_set.get(signal_id, {})
        per_signal[signal_id] = {
            "zone_id": zone, "commanded": len(seen),
            "last_set_ms": round((max(seen.values()) - at) * 1000, 1) if seen else None,
        }
    complete = [s["last_set_ms"] for s in per_signal.values()
                if s["commanded"] >= plan.per_zone]
    return {"plan": plan.__dict__, "offered_rate": offered["offered_rate"],
            "signals": per_signal, "every_station_commanded": len(complete) == len(sent),
            "last_set_ms": percentiles(complete) if complete else None}


async def _watch(commands: Any, sent: dict[str, tuple[str, float]],
                 first_set: dict[str, dict[str, float]]) -> None:
    while True:
        batch = await commands.getmany(timeout_ms=20)
        now = time.monotonic()
        for records in batch.values():
            for record in records:
                command = orjson.loads(record.value)
                signal_id = command.get("signal_id")
                if command.get("action") == "SET" and signal_id in sent:
                    first_set.setdefault(signal_id, {}).setdefault(command["station_id"], now)


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    settings = bench.settings("flood")
    await ensure_topics(settings)
    worker: WorkerProcess = await bench.worker(settings, "flood")
    plan = FloodPlan(zones=s.flood_zones, per_zone=s.flood_per_zone, rate=s.flood_rate,
                     signals=s.flood_signals, signal_gap_s=s.flood_signal_gap_s)
    try:
        out = await flood(settings, plan)
    finally:
        worker.terminate()
    short = {k: v["commanded"] for k, v in out["signals"].items()
             if v["commanded"] < plan.per_zone}
    say(f"  offered {out['offered_rate']:,.0f}/s; every station commanded: "
        f"{out['every_station_commanded']}" + (f" (short: {short})" if short else ""))
    return out


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    plan = r["plan"]
    got = [v["commanded"] for v in r["signals"].values()]
    figures = r["last_set_ms"]
    latency = ("—" if figures is None else
               f"p50 {figures['p50']:,.0f} / p95 {figures['p95']:,.0f} / "
               f"max {figures['max']:,.0f} ms")
    return [
        (f"flood before mappings settle: stations commanded per zone "
         f"(of {plan['per_zone']}, {plan['signals']} zones)",
         f"{min(got)}–{max(got)} (offered {r['offered_rate']:,.0f} readings/s)"),
        ("flood: signal → zone's last SET, end to end", latency),
    ]


PHASE = Phase("flood", "a flood a second after the mappings; every curtailed zone's stations "
              "commanded", run, rows)
