"""`evgrid bench` / `make bench`: throughput, DR reaction latency, memory and scaling against a
fresh local broker, each beside a raw aiokafka baseline measured in the same run.

Results go to `bench/results/<time>.json`, a markdown table to stdout and a PNG plot. The
figures are reported, never asserted: speed depends on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from evgrid.bench import gateway as gateway_bench
from evgrid.bench.load import preload, produce_mappings, raw_baseline, stream_readings
from evgrid.broker.local import LocalKafka, free_port
from evgrid.process import WorkerProcess
from evgrid.settings import Settings
from evgrid.timeutil import iso
from evgrid.topics import ensure_topics


@dataclass(frozen=True)
class Sizes:
    messages: int = 1_000_000
    stations: int = 20_000
    connectors: int = 2
    zones: int = 100
    latency_stations: int = 10_000
    latency_events: int = 50
    background_rate: float = 10_000.0
    memory_connectors: tuple[int, ...] = (10_000, 100_000)
    scaling_messages: int = 100_000
    partitions: int = 4
    # The rate is measured over this window of the preloaded backlog: at a few thousand
    # readings/s all of 1,000,000 would take longer than the whole benchmark may.
    throughput_window_s: float = 120.0


SMOKE = Sizes(messages=4_000, stations=400, zones=8, latency_stations=200, latency_events=3,
              background_rate=500.0, memory_connectors=(400, 2_000), scaling_messages=2_000)


#: An event whose commands take longer than this counts as a timeout (reported).
EVENT_TIMEOUT_S = 10.0


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, bootstrap: str, sizes: Sizes, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.sizes = sizes
        self.workdir = workdir
        self.results: dict = {"cores": os.cpu_count(), "sizes": asdict(sizes)}
        self.workers: list[WorkerProcess] = []

    def track(self, worker: WorkerProcess) -> WorkerProcess:
        """Workers are told to stop when their phase ends and reaped once at the end
        (`reap`), so no phase waits for the previous one's shutdown."""
        self.workers.append(worker)
        return worker

    def reap(self) -> None:
        for w in self.workers:
            w.stop()

    def settings(self, name: str, **kw: object) -> Settings:
        run = f"{name}-{uuid.uuid4().hex[:6]}"
        return Settings(
            app_id=f"bench-{run}", broker=self.bootstrap, data_dir=self.workdir / run,
            web_port=free_port(), partitions=self.sizes.partitions, log_level="warning",
            broker_session_timeout_s=6.0, broker_rebalance_timeout_s=6.0,
        ).with_topic_prefix(f"bench-{run}").model_copy(update=kw)

    async def worker(self, settings: Settings, tag: str) -> WorkerProcess:
        w = self.track(WorkerProcess(settings, self.workdir / f"{tag}.log")).start()
        await w.wait_ready(timeout=120)
        return w

    async def drain_rate(
        self, workers: list[WorkerProcess], target: int, started: float | None = None,
        max_seconds: float | None = None,
    ) -> float:
        """Readings/s from `started` (default: the first reading applied) until `target`
        readings are applied and no input partition has lag (the zone side caught up) —
        or, with `max_seconds`, the sustained rate over that long a window of the backlog."""
        last_print = 0.0
        while True:
            applied = sum([await w.metric("evgrid_readings_total") for w in workers])
            superseded = sum([await w.metric("evgrid_readings_superseded_total")
                              for w in workers])
            done = applied + superseded
            now = time.monotonic()
            if started is None and done > 0:
                started = now
            if now - last_print > 10:
                say(f"    {done:,.0f} / {target:,} applied")
                last_print = now
            if done >= target:
                lag = sum([await w.metric("evgrid_consumer_lag") for w in workers])
                if lag == 0:
                    break
            if max_seconds is not None and started is not None and now - started >= max_seconds:
                say(f"    sustained-rate window of {max_seconds:.0f}s over; {done:,.0f} applied")
                return done / (now - started)
            await asyncio.sleep(0.1)
        return target / max(1e-9, time.monotonic() - (started or time.monotonic()))

    async def throughput(self) -> None:
        s = self.sizes
        settings = self.settings("tput")
        await ensure_topics(settings)
        await produce_mappings(self.bootstrap, settings.topics.station_zones, s.stations, s.zones)
        say(f"throughput: preloading {s.messages:,} readings ({s.stations:,} stations, "
            f"{s.stations * s.connectors:,} connectors, {s.zones} zones)")
        prod_rate = await preload(self.bootstrap, settings.topics.meter_values, s.messages,
                                  s.stations, s.connectors)
        say("  raw baseline: aiokafka consumer + orjson over the same topic")
        raw = await raw_baseline(self.bootstrap, settings.topics.meter_values, s.messages)
        say(f"  raw: {raw:,.0f} msg/s; now one evgrid worker")
        w = await self.worker(settings, "tput")
        try:
            rate = await self.drain_rate([w], s.messages, max_seconds=s.throughput_window_s)
            rss = w.rss_mb()
        finally:
            w.terminate()
        self.results["throughput"] = {
            "produce_rate": prod_rate, "raw_rate": raw, "worker_rate": rate,
            "ratio": rate / raw, "worker_rss_mb": rss,
        }
        say(f"  worker: {rate:,.0f} readings/s (ratio {rate / raw:.3f})")

    async def scaling(self) -> None:
        s = self.sizes
        out = {}
        for n in (1, 2):
            settings = self.settings(f"scale{n}")
            await ensure_topics(settings)
            await produce_mappings(self.bootstrap, settings.topics.station_zones, s.stations,
                                   s.zones)
            # Workers first, on settled partitions; then the data, timed from its first
            # message: a rebalance in the middle would replay and muddle the figure.
            workers = [
                self.track(WorkerProcess(
                    settings.model_copy(update={"data_dir": settings.data_dir / str(i),
                                                "web_port": free_port()}),
                    self.workdir / f"scale{n}-{i}.log",
                )).start()
                for i in range(n)
            ]
            for w in workers:
                await w.wait_ready(timeout=120)
            if n > 1:  # let the group settle: the first worker was ready before the second
                await asyncio.sleep(2.0)
                for w in workers:
                    await w.wait_ready(timeout=120)
            try:
                started = time.monotonic()
                await preload(self.bootstrap, settings.topics.meter_values, s.scaling_messages,
                              s.stations, s.connectors, progress=False)
                out[f"workers_{n}"] = await self.drain_rate(workers, s.scaling_messages, started)
            finally:
                for w in workers:
                    w.terminate()
            say(f"scaling: {n} worker(s): {out[f'workers_{n}']:,.0f} readings/s")
        out["speedup"] = out["workers_2"] / out["workers_1"]
        self.results["scaling"] = out

    async def memory(self) -> None:
        s = self.sizes
        settings = self.settings("mem")
        await ensure_topics(settings)
        w = await self.worker(settings, "mem")
        out = {"idle_rss_mb": w.rss_mb()}
        loaded = 0
        try:
            for connectors in s.memory_connectors:
                stations = connectors // 2
                await produce_mappings(self.bootstrap, settings.topics.station_zones,
                                       stations - loaded // 2, s.zones, offset=loaded // 2)
                new = connectors - loaded
                await preload(self.bootstrap, settings.topics.meter_values, new,
                              stations - loaded // 2, 2, offset=loaded // 2, progress=False)
                await self.drain_rate([w], connectors)
                loaded = connectors
                out[f"rss_mb_{connectors}"] = w.rss_mb()
                say(f"memory: {connectors:,} connectors -> RSS {out[f'rss_mb_{connectors}']:.0f}"
                    " MB")
        finally:
            w.terminate()
        self.results["memory"] = out

    async def latency(self) -> None:
        s = self.sizes
        settings = self.settings("lat")
        await ensure_topics(settings)
        zones = max(1, s.latency_stations // 100)
        await produce_mappings(self.bootstrap, settings.topics.station_zones,
                               s.latency_stations, zones)
        await preload(self.bootstrap, settings.topics.meter_values, s.latency_stations * 2,
                      s.latency_stations, 2, progress=False)
        w = await self.worker(settings, "lat")
        try:
            await self.drain_rate([w], s.latency_stations * 2)
            quiet = await self._fire(settings, zones, 0, background=False)
            loaded = await self._fire(settings, zones, 10_000, background=True)
        finally:
            w.terminate()
        self.results["dr_latency_ms"] = {"quiet": quiet, "under_load": loaded,
                                         "stations_per_zone": s.latency_stations // zones,
                                         "background_rate": s.background_rate}

    async def _fire(self, settings: Settings, zones: int, first: int, background: bool
                    ) -> dict:
        """Fire DR events one by one; latency = event produced -> last command of its zone
        seen by a consumer (every station of the zone draws, so each gets a SET)."""
        s = self.sizes
        t = settings.topics
        per_zone = s.latency_stations // zones
        consumer = AIOKafkaConsumer(t.commands, bootstrap_servers=self.bootstrap,
                                    auto_offset_reset="latest", enable_auto_commit=False)
        await consumer.start()
        while not consumer.assignment():  # be at the end offset before the first event
            await consumer.getmany(timeout_ms=100)
        await consumer.seek_to_end()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0)
        await producer.start()
        stop = asyncio.Event()
        bg = (asyncio.create_task(stream_readings(self.bootstrap, t.meter_values,
                                                  s.background_rate, s.latency_stations, stop))
              if background else None)
        samples = []
        timeouts = 0
        try:
            for i in range(s.latency_events):
                if timeouts >= 3:  # the worker is not keeping up: say so, do not wait forever
                    break
                zone = f"BZ{(first + i) % zones:03d}"
                signal_id = f"LAT-{first}-{i}"
                now = time.time()
                event = {"signal_id": signal_id, "zone_id": zone, "signal_type": "CURTAIL",
                         "target_reduction_kw": 100.0, "start_ts": iso(now),
                         "end_ts": iso(now + 3600), "priority": 2, "received_ts": iso(now)}
                sent = time.monotonic()
                await producer.send_and_wait(t.demand_response, orjson.dumps(event),
                                             key=zone.encode())
                seen: set[str] = set()
                last = sent
                deadline = sent + EVENT_TIMEOUT_S
                while len(seen) < per_zone and time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=20)
                    for msgs in batch.values():
                        for m in msgs:
                            command = orjson.loads(m.value)
                            if command["signal_id"] == signal_id and command["action"] == "SET":
                                seen.add(command["station_id"])
                                last = time.monotonic()
                if len(seen) >= per_zone:
                    samples.append((last - sent) * 1000)
                else:
                    timeouts += 1
                # End it, so the zone is free for the next event: with two events in one
                # zone the lower cap governs, and an equal one would never be commanded.
                restore = {**event, "signal_type": "RESTORE", "received_ts": iso(time.time())}
                await producer.send_and_wait(t.demand_response, orjson.dumps(restore),
                                             key=zone.encode())
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            if bg:
                await bg
            await producer.stop()
            await consumer.stop()
        samples.sort()
        if not samples:
            return {"events": 0, "timeouts": timeouts}
        pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
        out = {"events": len(samples), "timeouts": timeouts,
               "p50": statistics.median(samples), "p95": pick(0.95),
               "p99": pick(0.99), "max": samples[-1]}
        say(f"DR latency ({'under load' if background else 'quiet'}): "
            f"p50 {out['p50']:.1f} ms, p99 {out['p99']:.1f} ms, max {out['max']:.1f} ms")
        return out


def report(results: dict) -> str:
    t = results.get("throughput", {})
    sc = results.get("scaling", {})
    mem = results.get("memory", {})
    lat = results.get("dr_latency_ms", {})
    q, ld = lat.get("quiet", {}), lat.get("under_load", {})
    def spread(d: dict) -> str:
        if not d.get("events"):
            return "n/a (no event completed)"
        return " / ".join(f"{d[k]:.0f}" for k in ("p50", "p95", "p99", "max"))

    rows = [
        ("meter values/s, one worker", f"{t.get('worker_rate', 0):,.0f}", "≥ 50,000"),
        ("raw aiokafka + orjson msg/s", f"{t.get('raw_rate', 0):,.0f}", "(baseline)"),
        ("worker / raw", f"{t.get('ratio', 0):.3f}", "≥ 0.25"),
        ("DR latency p50 / p95 / p99 / max, under load (ms)", spread(ld), "p99 ≤ 100"),
        ("DR latency p50 / p95 / p99 / max, quiet (ms)", spread(q), ""),
        ("DR events timed out (> 10 s), under load / quiet",
         f"{ld.get('timeouts', 0)} / {q.get('timeouts', 0)}", "0"),
    ]
    for key, value in mem.items():
        what = key.replace("rss_mb_", "").replace("_rss_mb", "").replace("_", " ")
        rows.append((f"worker RSS, {what} connectors" if what[0].isdigit() else
                     f"worker RSS, {what}", f"{value:.0f} MB",
                     "≤ 300 MB at 100,000" if key.endswith("100000") else ""))
    rows += [
        ("1 worker / 2 workers, readings/s",
         f"{sc.get('workers_1', 0):,.0f} / {sc.get('workers_2', 0):,.0f}", ""),
        ("speed-up with 2 workers", f"{sc.get('speedup', 0):.2f}× on {results['cores']} cores",
         ""),
    ]
    rows += gateway_bench.report_rows(results)
    lines = ["| measure | measured | target |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    t = results.get("throughput", {})
    sc = results.get("scaling", {})
    labels = ["raw aiokafka", "1 worker", "2 workers"]
    values = [t.get("raw_rate", 0), sc.get("workers_1", 0), sc.get("workers_2", 0)]
    a.bar(labels, values, color=["#7f7f7f", "#1f77b4", "#2ca02c"])
    a.axhline(50_000, color="#d62728", linestyle="--", label="target 50k/s")
    a.set_yscale("log")  # the worker is orders of magnitude under the raw consumer
    a.set_ylabel("messages / s (log)")
    a.set_title("throughput")
    a.legend()
    lat = results.get("dr_latency_ms", {})
    keys = ["p50", "p95", "p99", "max"]
    x = range(len(keys))
    b.bar([i - 0.2 for i in x], [lat.get("quiet", {}).get(k, 0) for k in keys], 0.4,
          label="quiet")
    b.bar([i + 0.2 for i in x], [lat.get("under_load", {}).get(k, 0) for k in keys], 0.4,
          label="under load")
    b.axhline(100, color="#d62728", linestyle="--", label="p99 target")
    b.set_xticks(list(x), keys)
    b.set_yscale("log")
    b.set_ylabel("ms (log)")
    b.set_title("DR reaction latency")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PHASES = ("throughput", "latency", "memory", "scaling", "gateway")
#: Phases that live in their own module, as `async def phase(bench)`.
MODULE_PHASES = {"gateway": gateway_bench.gateway_phase}


async def run_all(bootstrap: str, sizes: Sizes, workdir: Path,
                  only: tuple[str, ...] = PHASES) -> dict:
    bench = Bench(bootstrap, sizes, workdir)
    phases = {}
    try:
        for name in (n for n in PHASES if n in only):
            started = time.monotonic()
            await (MODULE_PHASES[name](bench) if name in MODULE_PHASES
                   else getattr(bench, name)())
            phases[name] = round(time.monotonic() - started, 1)
    finally:
        bench.reap()
    bench.results["phase_seconds"] = phases
    return bench.results


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmarks against a fresh local broker")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code runs")
    p.add_argument("--messages", type=int, default=None, help="readings for throughput")
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sizes = SMOKE if args.smoke else Sizes()
    if args.messages:
        sizes = Sizes(**{**asdict(sizes), "messages": args.messages})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="evgrid-bench-") as tmp:
        work = Path(tmp)
        bootstrap = os.environ.get("EVGRID_BROKER")
        broker = None if bootstrap else LocalKafka(data_dir=work / "kafka", port=0).start()
        try:
            only = tuple(p.strip() for p in args.phases.split(","))
            unknown = set(only) - set(PHASES)
            if unknown:
                raise SystemExit(f"evgrid: unknown bench phase(s) {sorted(unknown)}")
            results = asyncio.run(run_all(bootstrap or broker.bootstrap, sizes, work, only))
        finally:
            if broker is not None:
                broker.stop()
    results["elapsed_s"] = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + ("-smoke" if args.smoke else "")
    (args.out / f"{stamp}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    plot(results, args.out / f"{stamp}.png")
    say("")
    say(report(results))
    say(f"\n{results['elapsed_s']:.0f}s; results in {args.out / stamp}.json and .png")
    return 0
