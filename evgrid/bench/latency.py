"""DR latency in three conditions on one worker: quiet, 10,000 readings/s offered, and
saturated (offered ≥ 2× what the worker applies, so its lag grows). Two views of each event:
worker-side (signal received → last command acked, the worker's own `DR_REACTION` histogram,
read once before and once after each condition) and end-to-end (signal produced → last SET
of the zone seen by a consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from evgrid.bench.harness import Bench, LagProbe, Phase, say
from evgrid.bench.load import (
    SITES_PER_ZONE,
    Pace,
    consumer,
    preload,
    produce_mappings,
    produce_sites,
    producer,
    stream_readings,
)
from evgrid.bench.stats import (
    histogram_delta,
    histogram_figures,
    metric_sum,
    parse_histogram,
    percentiles,
)
from evgrid.process import WorkerProcess
from evgrid.settings import WorkerSettings
from evgrid.timeutil import iso
from evgrid.topics import ensure_topics

#: After this many timeouts a condition stops firing: the worker is not reacting.
MAX_TIMEOUTS = 3
STATIONS_PER_ZONE = 100
#: Every zone's stations sit behind 10 sites of 10 (two connectors of 20–140 kW each): a site
#: limit of this many kW holds them down, so every decision is a nested allocation.
SITE_MAX_KW = 1000.0
HISTOGRAM = "evgrid_dr_reaction_seconds"


@dataclass
class Firing:
    """The bench's side of a DR event: a producer for signals, a consumer of commands."""

    settings: WorkerSettings
    zones: int
    per_zone: int
    signals: AIOKafkaProducer
    commands: AIOKafkaConsumer
    timeout_s: float  # an event whose commands take longer counts as timed out (and > 1 s)

    async def fire(self, zone_id: str, signal_id: str) -> float | None:
        """One CURTAIL, then its RESTORE: ms from produced to the zone's last SET seen."""
        topic = self.settings.topics.demand_response
        now = time.time()
        event = {"signal_id": signal_id, "zone_id": zone_id, "signal_type": "CURTAIL",
                 "target_reduction_kw": 100.0, "start_ts": iso(now), "end_ts": iso(now + 3600),
                 "priority": 2, "received_ts": iso(now)}
        sent = time.monotonic()
        await self.signals.send_and_wait(topic, orjson.dumps(event), key=zone_id.encode())
        seen: set[str] = set()
        first = last = sent
        decisions: Counter[str] = Counter()  # SETs per decision (their command_ts)
        while len(seen) < self.per_zone and time.monotonic() < sent + self.timeout_s:
            batch = await self.commands.getmany(timeout_ms=20)
            for messages in batch.values():
                for message in messages:
                    command = orjson.loads(message.value)
                    if command["signal_id"] == signal_id and command["action"] == "SET":
                        if not seen:
                            first = time.monotonic()
                        seen.add(command["station_id"])
                        decisions[command["command_ts"]] += 1
                        last = time.monotonic()
        if last - sent > 1.0:  # say where the time went: before the first SET, or after
            say(f"    {signal_id} in {zone_id}: first SET after {(first - sent) * 1000:,.0f} "
                f"ms, last after {(last - sent) * 1000:,.0f} ms; SETs per decision "
                f"{[n for _, n in sorted(decisions.items())]}")
        # End it, so the zone is free for the next event: with two events in one zone the
        # lower cap governs, and an equal one would never be commanded.
        restore = {**event, "signal_type": "RESTORE", "received_ts": iso(time.time())}
        await self.signals.send_and_wait(topic, orjson.dumps(restore), key=zone_id.encode())
        if len(seen) < self.per_zone:
            say(f"    {signal_id} in {zone_id}: {len(seen)} of {self.per_zone} stations "
                f"commanded within {self.timeout_s:.0f} s")
            return None
        return (last - sent) * 1000


async def reaction_histogram(worker: WorkerProcess) -> list[tuple[float, float]]:
    _, text = await worker.get("/metrics")
    return parse_histogram(text, HISTOGRAM)


async def drained(bench: Bench, worker: WorkerProcess, lag: LagProbe, cap_s: float) -> float:
    """Let the backlog a previous condition left drain (at most `cap_s`) — the meter values
    and the zone side's station rows behind them — so each condition starts from a worker
    that keeps up when it can; returns the meter lag it starts with."""
    deadline = time.monotonic() + cap_s
    while True:
        _, text = await worker.get("/metrics")
        backlog = metric_sum(text, "evgrid_consumer_lag")
        behind = metric_sum(text, "evgrid_zone_rows_lag")
        if (backlog == 0 and behind == 0) or time.monotonic() >= deadline:
            return backlog
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


async def hold_saturated(bench: Bench, worker: WorkerProcess, pace: Pace,
                         stop: asyncio.Event) -> None:
    """Keep the offered rate at `saturation` × what the worker applied over the last seconds
    (one `/metrics` scrape a second, smoothed), so its lag keeps growing."""
    taken, at = await bench.applied([worker]), time.monotonic()
    applying: float | None = None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), bench.sizes.poll_s)
        now_taken, now = await bench.applied([worker]), time.monotonic()
        rate = (now_taken - taken) / max(now - at, 1e-9)
        applying = rate if applying is None else 0.5 * applying + 0.5 * rate
        if applying > 0:
            pace.rate = bench.sizes.saturation * applying
        taken, at = now_taken, now


async def condition(bench: Bench, worker: WorkerProcess, firing: Firing, lag: LagProbe,
                    name: str, rate: float, first_event: int,
                    saturate: bool = False) -> dict[str, Any]:
    """One condition's events while `rate` readings/s are offered; with `saturate`, `rate` is
    only where the offer starts: it is then held at `saturation` × what the worker applies."""
    s = bench.sizes
    say(f"  {name}: " + (f"{s.saturation}× what the worker applies offered (from "
                         f"{rate:,.0f}/s)" if saturate else f"{rate:,.0f} readings/s offered"))
    lag_start = await drained(bench, worker, lag, s.drain_cap_s)
    committed_start = await lag.lag()
    before = await reaction_histogram(worker)
    applied_start, t_start = await bench.applied([worker]), time.monotonic()
    stop = asyncio.Event()
    pace = Pace(rate)
    load = (asyncio.create_task(stream_readings(firing.settings, pace, s.latency_stations,
                                                stop)) if rate else None)
    pacer = asyncio.create_task(hold_saturated(bench, worker, pace, stop)) if saturate else None
    samples: list[float] = []
    timeouts = 0
    try:
        if load:
            await asyncio.sleep(s.load_settle_s)  # load established, lag building
        for i in range(s.latency_events):
            if timeouts >= MAX_TIMEOUTS:
                say(f"    {timeouts} events timed out: the worker is not reacting; stopping")
                break
            n = first_event + i
            took = await firing.fire(f"BZ{n % firing.zones:03d}", f"LAT-{name}-{n}")
            if took is None:
                timeouts += 1
            else:
                samples.append(took)
            if (i + 1) % 10 == 0:
                say(f"    {i + 1} / {s.latency_events} events, {timeouts} timed out")
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        offered = await load if load else {"offered_rate": 0.0}
        if pacer:
            await pacer
    taken, lag_end = await bench.observe([worker])
    applied = (taken - applied_start) / (time.monotonic() - t_start)
    committed_end = await lag.lag()
    await asyncio.sleep(1.0)  # the last RESTORE's commands are acked
    worker_side = histogram_figures(histogram_delta(await reaction_histogram(worker), before))
    e2e = percentiles(samples)
    out = {
        "offered_rate": offered["offered_rate"], "applied_rate": applied,
        "lag_start": lag_start, "lag_end": lag_end, "committed_lag_start": committed_start,
        "committed_lag_end": committed_end, "events": len(samples),
        "timeouts": timeouts, "over_1s": timeouts + sum(1 for v in samples if v > 1000),
        "end_to_end_ms": e2e, "worker_side_ms": worker_side,
        "end_to_end_samples_ms": samples,
    }
    say(f"    end-to-end p50/p99/max {fmt(e2e, 'p50')} / {fmt(e2e, 'p99')} / "
        f"{fmt(e2e, 'max')} ms, {out['over_1s']} events over 1 s; worker-side p99 "
        f"{fmt(worker_side, 'p99')} ms; applied {applied:,.0f}/s, lag {lag_start:,.0f} → "
        f"{lag_end:,.0f}")
    return out


async def applied_rate(bench: Bench, worker: WorkerProcess, settings: WorkerSettings) -> float:
    """Readings/s this worker applies, over a backlog produced for the purpose."""
    s = bench.sizes
    say(f"  measuring what the worker applies ({s.rate_probe_readings:,} readings)")
    taken = await bench.applied([worker])
    started = time.monotonic()
    await preload(settings, s.rate_probe_readings, s.latency_stations, 2, progress=False)
    measured = await bench.measure_rate([worker], int(taken) + s.rate_probe_readings,
                                        s.throughput_window_s, since=started, before=taken)
    say(f"    {measured['rate']:,.0f} readings/s")
    return measured["rate"]


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    settings = bench.settings("lat")
    await ensure_topics(settings)
    zones = max(1, s.latency_stations // STATIONS_PER_ZONE)
    await produce_sites(settings, zones, SITE_MAX_KW)
    await produce_mappings(settings, s.latency_stations, zones, sites=True)
    await preload(settings, s.latency_stations * 2, s.latency_stations, 2, progress=False)
    started = time.monotonic()
    worker = await bench.worker(settings, "lat")
    signals = producer(settings, linger_ms=0)
    commands = consumer(settings, settings.topics.commands, auto_offset_reset="latest",
                        enable_auto_commit=False)
    try:
        await bench.measure_rate([worker], s.latency_stations * 2, 60.0, since=started)
        # Saturation starts from what this worker applies alone: the throughput phase's figure
        # when it ran (a long window), else measured here on a backlog of its own.
        applies = (bench.results.get("throughput", {}).get("worker_rate")
                   or await applied_rate(bench, worker, settings))
        await signals.start()
        await commands.start()
        while not commands.assignment():  # at the end offset before the first event
            await commands.getmany(timeout_ms=100)
        await commands.seek_to_end()
        firing = Firing(settings, zones, s.latency_stations // zones, signals, commands,
                        s.event_timeout_s)
        async with LagProbe(settings) as lag:
            # "Quiet" still keeps the fleet alive — every connector heard once a minute — or
            # its stations would go stale (120 s) and drop out of the zones' load, and an
            # event would wait for SETs that idle stations never get.
            keep_alive = s.latency_stations * 2 / 60.0
            plan = (("quiet", keep_alive, False), ("loaded", s.background_rate, False),
                    ("saturated", s.saturation * applies, True))
            out: dict[str, Any] = {}
            for i, (name, rate, saturate) in enumerate(plan):
                out[name] = await condition(bench, worker, firing, lag, name, rate,
                                            i * s.latency_events, saturate)
    finally:
        await signals.stop()
        await commands.stop()
        worker.terminate()
    out.update(stations_per_zone=s.latency_stations // zones, zones=zones,
               sites_per_zone=SITES_PER_ZONE, site_max_kw=SITE_MAX_KW,
               worker_applies_rate=applies, event_timeout_s=s.event_timeout_s)
    return out


def fmt(figures: dict[str, Any], key: str) -> str:
    value = figures.get(key)
    if value is None:
        beyond = figures.get("beyond_ms")
        return f"> {beyond:,.0f}" if beyond and figures.get("count") else "n/a"
    return f"{value:,.0f}"


def spread(figures: dict[str, Any], top: str = "max") -> str:
    return " / ".join(fmt(figures, k) for k in ("p50", "p95", "p99", top))


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, label in (("quiet", "quiet"), ("loaded", "10,000 readings/s offered"),
                        ("saturated", "saturated")):
        c = r[name]
        ratio = c["offered_rate"] / c["applied_rate"] if c["applied_rate"] else 0.0
        load = (f"offered {c['offered_rate']:,.0f}/s, applied {c['applied_rate']:,.0f}/s "
                f"({ratio:.1f}×), "
                f"lag {c['lag_start']:,.0f} → {c['lag_end']:,.0f} (committed "
                f"{c['committed_lag_start']:,} → {c['committed_lag_end']:,})")
        out += [
            (f"DR end-to-end p50 / p95 / p99 / max, {label} (ms)",
             spread(c["end_to_end_ms"]) if c["events"] else "n/a (no event completed)"),
            (f"DR worker-side p50 / p95 / p99 / max bucket, {label} (ms)",
             spread(c["worker_side_ms"], "max_le_ms")
             + f" ({c['worker_side_ms']['count']} reactions)"),
            (f"DR events over 1 s / timed out (> {r['event_timeout_s']:.0f} s), {label}",
             f"{c['over_1s']} / {c['timeouts']} of {c['events'] + c['timeouts']}"),
        ]
        if name != "quiet":
            out.append((f"load during {label}", load))
    return out


PHASE = Phase("latency", "DR reaction, quiet / 10,000 readings/s / saturated, worker-side "
              "and end-to-end; every zone's stations behind 10 limited sites", run, rows)
