"""What every phase shares: sizes, per-run settings, worker processes, and the two ways of
watching a worker without slowing it — a rare `/metrics` scrape (once a second; scraping it
20×/s cost the worker ~4 %) for readings taken and live lag, and the committed lag of its
consumer groups from the broker."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from evgrid.bench.load import consumer
from evgrid.bench.stats import metric_sum
from evgrid.broker.local import free_port
from evgrid.process import WorkerProcess
from evgrid.settings import WorkerSettings


@dataclass(frozen=True)
class Sizes:
    """How big each phase is; `evgrid bench --size NAME=VALUE` overrides any of them."""

    # throughput: a preloaded backlog, the rate taken over a window of it
    messages: int = 1_000_000
    noop_messages: int = 200_000
    stations: int = 20_000
    connectors: int = 2
    zones: int = 100
    throughput_window_s: float = 120.0
    # DR latency: 100-station zones; 10,000 readings/s offered, then saturated: `saturation` ×
    # what the worker applies, re-measured each second (so the generator does not take the
    # cores it shares with the worker)
    latency_stations: int = 10_000
    saturation: float = 2.5
    latency_events: int = 50
    event_timeout_s: float = 10.0
    background_rate: float = 10_000.0
    load_settle_s: float = 5.0
    drain_cap_s: float = 60.0
    rate_probe_readings: int = 300_000  # when the throughput phase did not run
    # flood: mappings, then a second later readings faster than one worker applies, and
    # zones curtailed while the picture may still be settling
    flood_zones: int = 100
    flood_per_zone: int = 100
    flood_rate: float = 60_000.0
    flood_signals: int = 10
    flood_signal_gap_s: float = 3.0
    # memory: RSS at idle and at these fleet sizes (2 connectors per station)
    memory_connectors: tuple[int, ...] = (100_000, 1_000_000)
    memory_deadline_s: float = 240.0
    memory_checkpoint_s: float = 30.0  # the worker's checkpoint interval (its default)
    # recovery: kill -9 while readings arrive at this rate
    recovery_rate: float = 10_000.0
    recovery_stations: int = 10_000
    recovery_warmup_s: float = 20.0
    recovery_timeout_s: float = 90.0
    # 1 vs 2 workers
    scaling_messages: int = 400_000
    scaling_window_s: float = 30.0
    # sql: evgrid sql beside a worker taking this stream (2 connectors per station); long
    # enough for every station's 1-minute windows to close
    sql_stations: int = 50_000
    sql_rate: float = 10_000.0
    sql_measure_s: float = 180.0
    sql_events: int = 10
    # frequency: zones × stations in one area, each with a linear program, readings at
    # this rate; activations by one measurement each, then a quantised ramp
    freq_zones: int = 100
    freq_per_zone: int = 100
    freq_rate: float = 10_000.0
    freq_activations: int = 10
    # activations before the timed ones, reported apart: a freshly started broker and worker
    # compile and allocate through their first ones (the phase prints the CPU the rest of
    # the machine used beside the worker in each: it stays high through the fourth)
    freq_warmups: int = 5
    freq_ramp_s: float = 10.0
    freq_timeout_s: float = 30.0
    freq_ready_s: float = 120.0
    partitions: int = 4
    poll_s: float = 1.0


#: Every phase's code at a tiny size: the smoke test proves it runs, not how fast.
SMOKE = Sizes(
    messages=4_000, noop_messages=2_000, stations=400, zones=8, throughput_window_s=10.0,
    latency_stations=200, latency_events=2, background_rate=300.0, load_settle_s=0.5,
    drain_cap_s=1.0, rate_probe_readings=2_000, event_timeout_s=5.0,
    flood_zones=4, flood_per_zone=10, flood_rate=500.0, flood_signals=2,
    flood_signal_gap_s=0.5,
    memory_connectors=(400, 2_000), memory_deadline_s=60.0, memory_checkpoint_s=1.0,
    recovery_rate=100.0, recovery_stations=100, recovery_warmup_s=1.0, recovery_timeout_s=60.0,
    scaling_messages=2_000, scaling_window_s=10.0, sql_stations=200, sql_rate=300.0,
    sql_measure_s=10.0, sql_events=2, freq_zones=4, freq_per_zone=10, freq_rate=300.0,
    freq_activations=2, freq_warmups=1, freq_ramp_s=2.0, freq_timeout_s=15.0, freq_ready_s=60.0,
    partitions=2, poll_s=0.5,
)


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    """One benchmark run: the broker settings every phase derives its own from, the sizes,
    the workers started (reaped at the end) and the results so far."""

    def __init__(self, base: WorkerSettings, sizes: Sizes, workdir: Path) -> None:
        self.base = base
        self.sizes = sizes
        self.workdir = workdir
        self.results: dict[str, Any] = {"cores": os.cpu_count(), "sizes": asdict(sizes)}
        self.workers: list[WorkerProcess] = []

    def settings(self, name: str, **overrides: Any) -> WorkerSettings:
        """Own app id, topics and data dir per run, the broker and security settings of the
        base; validated again (model_copy would skip the security checks)."""
        run = f"{name}-{uuid.uuid4().hex[:6]}"
        named = self.base.with_topic_prefix(f"bench-{run}")
        return WorkerSettings.model_validate({
            **named.model_dump(), "app_id": f"bench-{run}", "data_dir": self.workdir / run,
            "web_port": free_port(), "partitions": self.sizes.partitions,
            "log_level": "warning", "broker_session_timeout_s": 6.0,
            "broker_rebalance_timeout_s": 6.0, **overrides,
        })

    def track(self, worker: WorkerProcess) -> WorkerProcess:
        """Workers are told to stop when their phase ends (`end_phase`) and reaped once at
        the end, so no phase waits for the previous one's shutdown."""
        self.workers.append(worker)
        return worker

    def end_phase(self) -> None:
        """Every worker started so far is told to stop (SIGTERM, not waited for): none runs
        on beside the next phase's measurements, whatever its phase did with it."""
        for worker in self.workers:
            worker.terminate()

    def reap(self) -> None:
        for worker in self.workers:
            worker.stop()

    def spawn(self, settings: WorkerSettings, tag: str) -> WorkerProcess:
        return self.track(WorkerProcess(settings, self.workdir / f"{tag}.log")).start()

    async def worker(self, settings: WorkerSettings, tag: str) -> WorkerProcess:
        worker = self.spawn(settings, tag)
        await worker.wait_ready(timeout=120)
        return worker

    async def observe(self, workers: list[WorkerProcess]) -> tuple[float, float]:
        """(readings taken — applied or superseded —, input lag) over the workers: one
        `/metrics` scrape each. The lag is the worker's own gauge (fetch position behind the
        partition's end): live, where committed offsets trail by the commit interval."""
        taken = lag = 0.0
        for worker in workers:
            _, text = await worker.get("/metrics")
            taken += metric_sum(text, "evgrid_readings_total")
            taken += metric_sum(text, "evgrid_readings_superseded_total")
            lag += metric_sum(text, "evgrid_consumer_lag")
        return taken, lag

    async def applied(self, workers: list[WorkerProcess]) -> float:
        return (await self.observe(workers))[0]

    async def measure_rate(self, workers: list[WorkerProcess], target: int, window_s: float,
                           since: float, before: float = 0.0) -> dict[str, float]:
        """Readings/s from the first scrape that sees work (startup excluded) until `target`
        readings are taken or `window_s` has passed. When the first scrape already sees the
        target (tiny sizes), the rate is the `before`..target readings over the time from
        `since`."""
        first: tuple[float, float] | None = None
        last_print = time.monotonic()
        while True:
            done = await self.applied(workers)
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done)
                if done >= target:
                    return {"rate": (done - before) / max(now - since, 1e-9), "applied": done,
                            "seconds": now - since}
            elif first is not None and (done >= target or now - first[0] >= window_s):
                seconds = now - first[0]
                return {"rate": (done - first[1]) / seconds, "applied": done,
                        "seconds": seconds}
            if now - last_print >= 10:
                say(f"    {done:,.0f} / {target:,} readings taken")
                last_print = now
            await asyncio.sleep(self.sizes.poll_s)

    async def wait_applied(self, workers: list[WorkerProcess], target: int,
                           deadline_s: float) -> tuple[float, float]:
        """Wait until `target` readings are taken, at most `deadline_s`; (taken, seconds)."""
        started = last_print = time.monotonic()
        while True:
            done = await self.applied(workers)
            now = time.monotonic()
            if done >= target or now - started >= deadline_s:
                return done, now - started
            if now - last_print >= 10:
                say(f"    {done:,.0f} / {target:,} readings taken")
                last_print = now
            await asyncio.sleep(self.sizes.poll_s)


class LagProbe:
    """Committed lag of a worker's groups, from the broker — what a lag-based autoscaler
    sees: end offsets minus what the groups whose id starts with the app id (Faust's, and the
    meter-value Service's) committed, per partition the furthest commit. It trails the worker
    by its commit interval (the Service commits at checkpoints, every 30-60 s)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                         request_timeout_ms=15_000,
                                         **settings.kafka_client_kwargs())
        self.offsets = consumer(settings, enable_auto_commit=False)
        self.known: dict[str, list[int]] = {}

    async def __aenter__(self) -> LagProbe:
        await self.admin.start()
        await self.offsets.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.offsets.stop()
        await self.admin.close()

    async def lag(self, *topics: str) -> int:
        """Messages of `topics` (default: the meter values) not yet committed."""
        partitions = await self.partitions(topics or (self.settings.topics.meter_values,))
        ends = await self.offsets.end_offsets(partitions)
        committed: dict[TopicPartition, int] = {}
        for group in await self.groups():
            offsets = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
            for tp, meta in offsets.items():
                if meta is not None and meta.offset >= 0:
                    committed[tp] = max(committed.get(tp, 0), meta.offset)
        return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())

    async def partitions(self, topics: tuple[str, ...]) -> list[TopicPartition]:
        missing = [topic for topic in topics if topic not in self.known]
        if missing:
            for described in await self.admin.describe_topics(missing):
                self.known[described["topic"]] = sorted(
                    p["partition"] for p in described["partitions"])
        return [TopicPartition(topic, p) for topic in topics for p in self.known[topic]]

    async def groups(self) -> list[str]:
        listed = await self.admin.list_consumer_groups()
        return sorted(str(group[0]) for group in listed
                      if str(group[0]).startswith(self.settings.app_id))


#: A phase: runs against the Bench and returns its figures; `rows` turns them into
#: (measure, figure) lines for the printed and markdown report.
PhaseRun = Callable[[Bench], Awaitable[dict[str, Any]]]
PhaseRows = Callable[[dict[str, Any]], list[tuple[str, str]]]


@dataclass(frozen=True)
class Phase:
    name: str
    about: str
    run: PhaseRun
    rows: PhaseRows
