"""Frequency response at fleet scale: 100 zones of 100 stations in one area, each with a
linear program (49.90 → 49.50 Hz), while 10,000 readings/s arrive. A frequency source sends
10 measurements/s; one measurement stepping from 50.00 to 49.50 Hz activates every zone at
once. Timed per activation, from that measurement:

- worker-side: from its Kafka timestamp (CreateTime, set by the bench's producer when it
  sends) to the commands' Kafka timestamps (CreateTime, set by the worker's producer), the
  fleet's first command and the last station's first command;
- end to end: from the same instant to when the bench's consumer saw those commands.

The programs restore within a second (no hold, no recovery time, a 1 s spread), and the next
activation waits until every commanded station was released, so each one starts from IDLE.
Five warm-up activations come first and are reported apart (`Sizes.freq_warmups`): through
its first four activations a freshly started broker compiles its produce path and takes most
of a core beside the worker. Each activation reports the CPU the worker and the rest of the
machine used until every station was seen commanded, so a slow one shows whether the worker
was short of a core.
Then a quantised ramp (49.90 → 49.50 Hz at 10 Hz in 0.01 Hz steps, so 20 quanta of 5 %) counts
how many commands each step sends."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from evgrid.bench.harness import Bench, Phase, say
from evgrid.bench.latency import fmt
from evgrid.bench.load import (
    Pace,
    consumer,
    produce_mappings,
    producer,
    stream_readings,
)
from evgrid.bench.load import zone_id as bench_zone
from evgrid.bench.stats import histogram_delta, histogram_figures, parse_histogram, percentiles
from evgrid.process import WorkerProcess, machine_busy_s
from evgrid.settings import WorkerSettings
from evgrid.topics import ensure_topics

AREA = "BENCH"
NOMINAL_HZ, DIP_HZ = 50.0, 49.5
SOURCE_RATE_HZ = 10.0
#: Each zone commits this share of what its stations draw (readings average ~80 kW a
#: connector, two connectors a station).
COMMITTED_KW_PER_STATION = 0.3 * 2 * 80.0
#: Held at 49.5 Hz this long after the last station's first command: re-commands within an
#: activation (loads change under it) are counted too.
HOLD_S = 2.0
HISTOGRAM = "evgrid_frequency_reaction_seconds"
TARGET_FIRST_P99_MS, TARGET_LAST_P99_MS = 50.0, 500.0


def program(zone_id: str, per_zone: int) -> dict:
    """Linear 49.90 → 49.50 Hz, released at once and spread over a second."""
    return {"zone_id": zone_id, "area_id": AREA, "product": "linear",
            "committed_kw": COMMITTED_KW_PER_STATION * per_zone, "start_hz": 49.9,
            "full_hz": 49.5, "deadband_hz": 0.0, "full_activation_s": 30.0,
            "half_activation_s": 5.0, "min_hold_s": 0.0, "recovery_s": 0.0,
            "restore_spread_s": 1.0}


def ramp_hz(elapsed: float, ramp_s: float) -> float:
    """49.90 → 49.50 Hz over `ramp_s`, as a meter with 10 mHz resolution reports it."""
    return round(max(DIP_HZ, 49.9 - 0.4 * elapsed / ramp_s), 2)


class Source:
    """The area's frequency source: `SOURCE_RATE_HZ` measurements/s of `hz_of(elapsed)`."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.topic = settings.topics.frequency
        self.producer: AIOKafkaProducer = producer(settings, linger_ms=0, acks=1)
        self.hz_of: Callable[[float], float] = lambda _: NOMINAL_HZ
        self.since = time.time()
        self.sent = 0

    async def send(self, hz: float) -> int:
        """One measurement now; its time (epoch ms) is both its `ts` and its CreateTime."""
        ms = int(time.time() * 1000)
        await self.producer.send(self.topic, orjson.dumps({
            "area_id": AREA, "frequency_hz": hz, "ts": ms, "source": "bench-pmu"}),
            key=AREA.encode(), timestamp_ms=ms)
        self.sent += 1
        return ms

    async def step(self, hz: float) -> int:
        """Hold `hz` from now on, its first measurement sent at once; returns its time (ms)."""
        self.hz_of, self.since = (lambda _: hz), time.time()
        return await self.send(hz)

    def play(self, hz_of: Callable[[float], float]) -> None:
        self.hz_of, self.since = hz_of, time.time()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.send(self.hz_of(time.time() - self.since))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / SOURCE_RATE_HZ)


@dataclass
class Activation:
    """The commands of the activations started between `since` and `until` (epoch s)."""

    since: float
    until: float
    sent_ms: int = 0  # the measurement that started it: its CreateTime
    first_ms: dict[str, int] = field(default_factory=dict)  # station -> first SET's CreateTime
    first_seen: dict[str, float] = field(default_factory=dict)  # station -> seen (epoch s)
    sets: Counter[str] = field(default_factory=Counter)  # SETs per station
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (zone, command_ts)
    cleared: set[str] = field(default_factory=set)
    release_ms: int = 0  # when the frequency went back to nominal (0: not yet)
    sets_after_release: int = 0  # SETs whose CreateTime is at or after `release_ms`
    # CPU from the measurement until every station was seen commanded: the worker's, and
    # the rest of the machine's (the broker, this bench, anything else) beside it
    worker_cpu_ms: float = 0.0
    beside_cpu_ms: float = 0.0

    def figures(self) -> dict[str, float]:
        sent_s = self.sent_ms / 1000
        first_decision: dict[str, str] = {}
        for zone, command_ts in self.decisions:
            if command_ts < first_decision.get(zone, "~"):
                first_decision[zone] = command_ts
        return {
            "first_worker_ms": min(self.first_ms.values()) - self.sent_ms,
            "last_worker_ms": max(self.first_ms.values()) - self.sent_ms,
            # the median station's first command: a trickle, or one late burst?
            "median_worker_ms": statistics.median_low(self.first_ms.values()) - self.sent_ms,
            "first_e2e_ms": round((min(self.first_seen.values()) - sent_s) * 1000, 1),
            "last_e2e_ms": round((max(self.first_seen.values()) - sent_s) * 1000, 1),
            "commanded": len(self.first_ms),
            "sets": sum(self.sets.values()),
            "max_sets_per_station": max(self.sets.values()),
            # SETs of each zone's first decision (its reaction to the measurement)
            "first_decision_sets": sum(self.decisions[z, ts] for z, ts in first_decision.items()),
            "cleared": len(self.cleared),
            "sets_after_release": self.sets_after_release,
            "worker_cpu_ms": self.worker_cpu_ms,
            "beside_cpu_ms": self.beside_cpu_ms,
        }


#: Every field `watch` reads comes before the connectors and the OCPP payloads, most of a
#: command's bytes: it parses the head alone, and so takes less of the cores the worker shares.
HEAD_END = b',"connectors":'


def command_head(value: bytes) -> dict[str, Any]:
    """A command's fields up to its connectors (the whole command if it has none)."""
    end = value.find(HEAD_END)
    return orjson.loads(value[:end] + b"}" if end > 0 else value)


def activation_start(signal_id: str) -> float | None:
    """"freq:<zone_id>:<start>" -> start (epoch s)."""
    if not signal_id.startswith("freq:"):
        return None
    try:
        return float(signal_id.rsplit(":", 1)[1])
    except ValueError:
        return None


async def watch(commands: AIOKafkaConsumer, tracked: list[Activation]) -> None:
    while True:
        batch = await commands.getmany(timeout_ms=20)
        seen = time.time()
        for records in batch.values():
            for record in records:
                command = command_head(record.value)
                start = activation_start(command.get("signal_id") or "")
                if start is None:
                    continue
                for a in tracked:
                    if a.since <= start <= a.until:
                        break
                else:
                    continue
                station = command["station_id"]
                if command["action"] == "CLEAR":
                    a.cleared.add(station)
                    continue
                a.sets[station] += 1
                if a.release_ms and record.timestamp >= a.release_ms:
                    a.sets_after_release += 1
                a.decisions[command["zone_id"], command["command_ts"]] += 1
                if station not in a.first_ms:
                    a.first_ms[station] = record.timestamp
                    a.first_seen[station] = seen


async def until(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def ready(worker: WorkerProcess, zones: int, per_zone: int, timeout_s: float) -> None:
    """Every zone known, armed (its program read) and its stations all reporting."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, body = await worker.get("/zones")
        found = [z for z in body.get("zones", [])
                 if z.get("members_reporting") == per_zone and z.get("warm")
                 and (z.get("frequency") or {}).get("area_id") == AREA]
        if len(found) >= zones:
            return
        if time.monotonic() >= deadline:
            sample = [{k: z.get(k) for k in ("zone_id", "members", "members_reporting", "warm")}
                      | {"frequency": bool(z.get("frequency"))}
                      for z in body.get("zones", [])[:3]]
            raise RuntimeError(f"only {len(found)} of {zones} zones ready in {timeout_s:.0f} "
                               f"s: {sample}\n{worker.log_tail()}")
        await asyncio.sleep(1.0)


async def reaction_histogram(worker: WorkerProcess) -> list[tuple[float, float]]:
    _, text = await worker.get("/metrics")
    return parse_histogram(text, HISTOGRAM)


async def release(source: Source, a: Activation, timeout_s: float) -> bool:
    """Back to nominal until every commanded station is released; a little after that the
    zones are IDLE (the restore ends with its last release)."""
    a.release_ms = await source.step(NOMINAL_HZ)
    ok = await until(lambda: a.cleared >= set(a.first_ms), timeout_s)
    await asyncio.sleep(0.5)
    return ok


async def activations(source: Source, tracked: list[Activation], n: int, stations: int,
                      timeout_s: float, worker: WorkerProcess,
                      label: str = "activation") -> list[Activation]:
    done: list[Activation] = []
    for i in range(n):
        a = Activation(since=time.time() - 0.01, until=time.time() + 1.0)
        tracked.append(a)
        busy, cpu = machine_busy_s(), worker.cpu_s()
        a.sent_ms = await source.step(DIP_HZ)
        complete = await until(lambda a=a: len(a.first_ms) >= stations, timeout_s)
        a.worker_cpu_ms = round((worker.cpu_s() - cpu) * 1000)
        a.beside_cpu_ms = round((machine_busy_s() - busy) * 1000) - a.worker_cpu_ms
        await asyncio.sleep(HOLD_S)
        released = await release(source, a, timeout_s)
        if not complete:
            say(f"    {label} {i + 1}: {len(a.first_ms)} of {stations} stations commanded "
                f"within {timeout_s:.0f} s")
        else:
            done.append(a)
            f = a.figures()
            say(f"    {label} {i + 1}: first command {f['first_worker_ms']:,.0f} ms, last "
                f"{f['last_worker_ms']:,.0f} ms worker-side ({f['first_e2e_ms']:,.0f} / "
                f"{f['last_e2e_ms']:,.0f} ms seen); {f['sets']:,} SETs, "
                f"{f['cleared']:,} released; CPU worker {a.worker_cpu_ms:,.0f} ms, beside it "
                f"{a.beside_cpu_ms:,.0f} ms" + ("" if released else " (release timed out)"))
    return done


async def ramp(source: Source, tracked: list[Activation], ramp_s: float, stations: int,
               timeout_s: float) -> dict[str, Any]:
    """The quantised ramp: commands per quantum step."""
    a = Activation(since=time.time() - 0.01, until=time.time() + ramp_s + 1.0)
    tracked.append(a)
    source.play(lambda elapsed: ramp_hz(elapsed, ramp_s))
    await asyncio.sleep(ramp_s + HOLD_S)
    released = await release(source, a, timeout_s)
    per_zone = Counter(zone for zone, _ in a.decisions)
    steps = round(0.4 / 0.01 / 2)  # 0.01 Hz = 2.5 % of the droop; a quantum is 5 %
    sets = sum(a.sets.values())
    return {
        "ramp_s": ramp_s, "quantum_steps": steps, "commanded": len(a.first_ms),
        "released": released, "sets": sets,
        "decisions_per_zone": percentiles(list(per_zone.values())),
        "sets_per_decision": percentiles(list(a.decisions.values())),
        "sets_per_station": percentiles(list(a.sets.values())),
        "sets_per_station_per_step": sets / max(1, stations) / steps,
    }


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    zones, per_zone = s.freq_zones, s.freq_per_zone
    stations = zones * per_zone
    settings = bench.settings("freq")
    await ensure_topics(settings)
    await produce_mappings(settings, stations, zones)
    worker = await bench.worker(settings, "freq")
    writer = producer(settings)
    await writer.start()
    try:
        for z in range(zones):
            zone = bench_zone(z, zones)
            await writer.send(settings.topics.frequency_programs,
                              orjson.dumps(program(zone, per_zone)), key=zone.encode())
        await writer.flush()
    finally:
        await writer.stop()
    stop = asyncio.Event()
    source = Source(settings)
    commands = consumer(settings, settings.topics.commands, auto_offset_reset="latest",
                        enable_auto_commit=False)
    tracked: list[Activation] = []
    tasks: list[asyncio.Task] = []
    try:
        await source.producer.start()
        await commands.start()
        load = asyncio.create_task(stream_readings(settings, Pace(s.freq_rate), stations, stop))
        tasks = [load, asyncio.create_task(source.run(stop))]
        say(f"  {zones} zones × {per_zone} stations in area {AREA}, {s.freq_rate:,.0f} "
            "readings/s offered; waiting for every zone's picture")
        await ready(worker, zones, per_zone, s.freq_ready_s)
        while not commands.assignment():
            await commands.getmany(timeout_ms=100)
        await commands.seek_to_end()
        tasks.append(asyncio.create_task(watch(commands, tracked)))
        _, lag_ready = await bench.observe([worker])
        say(f"  every zone ready; the worker's meter-value lag {lag_ready:,.0f}")
        warm = await activations(source, tracked, s.freq_warmups, stations, s.freq_timeout_s,
                                 worker, "warm-up activation")
        before = await reaction_histogram(worker)
        started = time.monotonic()
        done = await activations(source, tracked, s.freq_activations, stations,
                                 s.freq_timeout_s, worker)
        reaction = histogram_figures(histogram_delta(await reaction_histogram(worker), before))
        _, lag_activated = await bench.observe([worker])
        say(f"  quantised ramp 49.90 → 49.50 Hz over {s.freq_ramp_s:.0f} s")
        ramped = await ramp(source, tracked, s.freq_ramp_s, stations, s.freq_timeout_s)
        taken, lag = await bench.observe([worker])
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        offered = await tasks[0] if tasks else {"offered_rate": 0.0}
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        await commands.stop()
        await source.producer.stop()
        worker.terminate()
    figures = [a.figures() for a in done]
    out: dict[str, Any] = {
        "zones": zones, "stations_per_zone": per_zone, "stations": stations,
        "offered_rate": offered["offered_rate"], "lag_ready": lag_ready,
        "lag_after_activations": lag_activated, "lag_end": lag, "readings_taken": taken,
        "seconds": round(elapsed, 1), "activations": len(figures),
        "timeouts": s.freq_activations - len(figures), "measurements_sent": source.sent,
        "per_activation": figures, "reaction_histogram_ms": reaction, "ramp": ramped,
        "warmups": s.freq_warmups, "warmup_last_worker_ms": [a.figures()["last_worker_ms"]
                                                             for a in warm],
        "warmup_beside_cpu_ms": [a.beside_cpu_ms for a in warm],
    }
    for key in ("first_worker_ms", "median_worker_ms", "last_worker_ms", "first_e2e_ms",
                "last_e2e_ms", "worker_cpu_ms", "beside_cpu_ms"):
        out[key] = percentiles([f[key] for f in figures])
    out["sets_per_station"] = percentiles([f["sets"] / stations for f in figures])
    out["sets_after_release_per_station"] = percentiles(
        [f["sets_after_release"] / stations for f in figures])
    out["first_decision_sets_per_station"] = percentiles(
        [f["first_decision_sets"] / stations for f in figures])
    out["max_sets_per_station"] = max((f["max_sets_per_station"] for f in figures), default=0)
    say(f"  measurement → last command worker-side p50/p99/max "
        f"{spread3(out['last_worker_ms'])} ms (target p99 ≤ {TARGET_LAST_P99_MS:.0f}); first "
        f"{spread3(out['first_worker_ms'])} ms (target p99 ≤ {TARGET_FIRST_P99_MS:.0f})")
    return out


def spread3(figures: dict[str, Any]) -> str:
    return " / ".join(fmt(figures, k) for k in ("p50", "p99", "max"))


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    n = f"{r['activations']} activations of {r['zones']} zones ({r['stations']:,} stations)"
    ramp_ = r["ramp"]
    spp = r["sets_per_station"]
    first = r["first_decision_sets_per_station"]
    after = r["sets_after_release_per_station"]
    reaction = r["reaction_histogram_ms"]
    return [
        (f"frequency: measurement → first command, worker-side p50 / p99 / max (ms), {n}",
         f"{spread3(r['first_worker_ms'])} (target p99 ≤ {TARGET_FIRST_P99_MS:.0f})"),
        ("frequency: measurement → last station's command, worker-side p50 / p99 / max (ms)",
         f"{spread3(r['last_worker_ms'])} (target p99 ≤ {TARGET_LAST_P99_MS:.0f})"),
        (f"frequency: {r['warmups']} warm-up activations before the timed ones, not "
         "counted: measurement → last station's command, worker-side (ms)",
         ", ".join(f"{ms:,.0f}" for ms in r["warmup_last_worker_ms"]) or "none"),
        ("frequency: CPU from the measurement until every station was seen commanded (ms): "
         "the worker's p50 / max; beside it (broker, this bench, the rest) p50 / max; beside "
         "it in each warm-up",
         (f"{fmt(r['worker_cpu_ms'], 'p50')} / {fmt(r['worker_cpu_ms'], 'max')}; "
          f"{fmt(r['beside_cpu_ms'], 'p50')} / {fmt(r['beside_cpu_ms'], 'max')}; "
          + (", ".join(f"{ms:,.0f}" for ms in r["warmup_beside_cpu_ms"]) or "none"))),
        ("frequency: measurement → the median station's command, worker-side p50 / p99 / max "
         "(ms)", spread3(r["median_worker_ms"])),
        ("frequency: measurement → first command, end to end p50 / p99 / max (ms)",
         spread3(r["first_e2e_ms"])),
        ("frequency: measurement → last station's command, end to end p50 / p99 / max (ms)",
         spread3(r["last_e2e_ms"])),
        ("frequency: the worker's reaction histogram (arrival → a zone's last command "
         "handed to its producer) p50 / p99 (ms)",
         f"{fmt(reaction, 'p50')} / {fmt(reaction, 'p99')} ({reaction['count']} zone "
         "reactions)"),
        ("frequency: activations timed out (not every station commanded)",
         f"{r['timeouts']} of {r['activations'] + r['timeouts']}"),
        ("frequency: SETs per station in each zone's first decision (a step 50 → 49.5 Hz), "
         "p50 / max over the activations",
         (f"{first['p50']:.2f} / {first['max']:.2f}" if first else "n/a")),
        ("frequency: SETs per station per activation (held "
         f"{HOLD_S:.0f} s, then released), p50 / max; most to one station; of them after "
         "the frequency was back to nominal, p50",
         (f"{spp['p50']:.2f} / {spp['max']:.2f}; {r['max_sets_per_station']}; "
          f"{after['p50']:.2f}" if spp else "n/a")),
        (f"frequency: ramp 49.90 → 49.50 Hz over {ramp_['ramp_s']:.0f} s at 10 Hz, 0.01 Hz "
         f"steps ({ramp_['quantum_steps']} quanta): SETs per station per quantum",
         f"{ramp_['sets_per_station_per_step']:.2f} ({ramp_['sets']:,} SETs to "
         f"{ramp_['commanded']:,} stations)"),
        ("frequency: ramp: decisions per zone, SETs per decision p50 / max",
         (f"{ramp_['decisions_per_zone'].get('p50', 0):.0f} / "
          f"{ramp_['decisions_per_zone'].get('max', 0):.0f}; "
          f"{ramp_['sets_per_decision'].get('p50', 0):.0f} / "
          f"{ramp_['sets_per_decision'].get('max', 0):.0f}")),
        ("load during frequency",
         f"offered {r['offered_rate']:,.0f} readings/s; the worker's lag when every zone was "
         f"ready {r['lag_ready']:,.0f}, after the activations {r['lag_after_activations']:,.0f}"
         f", at the end {r['lag_end']:,.0f}"),
    ]


PHASE = Phase("frequency", "100 zones of 100 stations in one area activated at once by one "
              "measurement, 10,000 readings/s arriving; first and last command, worker-side "
              "and end to end; commands per quantum of a ramp", run, rows)
