"""The gateway phase of `evgrid bench`: N simulated OCPP chargers (asyncio, in the bench
process) on one `evgrid gateway` process, each sending MeterValues every 10 s.

Reported, never asserted: connections held, meter values/s forwarded to Kafka, the gateway's
RSS, and command delivery latency — from the produce call of a command on the commands topic
to the charger receiving its SetChargingProfile — p50/p99, at each charger count.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from evgrid import codec
from evgrid.bench.harness import Phase
from evgrid.broker.local import free_port
from evgrid.gateway.process import GatewayProcess
from evgrid.gateway.server import raise_fd_limit
from evgrid.profiles import STATION, clear_profile_payloads, profile_id_for, set_profile_payloads
from evgrid.settings import GatewaySettings
from evgrid.simulator.ocpp_client import SimCharger
from evgrid.timeutil import from_epoch, iso
from evgrid.topics import ensure_topics


@dataclass(frozen=True)
class GatewaySizes:
    chargers: tuple[int, ...] = (1_000, 5_000)
    meter_interval_s: float = 10.0
    measure_s: float = 30.0
    commands: int = 300


GC_PAUSES_S: list[float] = []


def _watch_gc() -> None:
    """The simulated chargers' own full collections, to tell their stalls from the gateway's."""
    started = [0.0]

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            GC_PAUSES_S.append(time.perf_counter() - started[0])

    gc.callbacks.append(watch)


GATEWAY_SMOKE = GatewaySizes(chargers=(50,), meter_interval_s=2.0, measure_s=4.0, commands=20)


def say(text: str) -> None:
    print(text, flush=True)


def sample_command(station_id: str, command_id: str, *, kw: float = 11.0,
                   valid_s: float = 600.0, at: float | None = None, action: str = "SET",
                   signal_id: str = "S1") -> dict:
    """A command as the worker publishes it (station-wide profile), for benches and tests."""
    now = at or time.time()
    pid = profile_id_for(signal_id, station_id)
    ocpp = (set_profile_payloads(profile_id=pid, stack_level=1, mode=STATION,
                                 station_limit_kw=kw, connectors=[], valid_from=from_epoch(now),
                                 valid_to=from_epoch(now + valid_s))
            if action == "SET" else
            clear_profile_payloads(profile_id=pid, mode=STATION, connectors=[]))
    return {"command_id": command_id, "action": action, "reason": "DR",
            "station_id": station_id, "zone_id": "Z1",
            "target_power_kw": kw if action == "SET" else None, "station_shed_kw": 0.0,
            "signal_id": signal_id, "priority": 2, "dr_end_ts": iso(now + valid_s),
            "command_ts": iso(now), "connectors": [], "ocpp": ocpp}


async def _topic_end(consumer: AIOKafkaConsumer, topic: str) -> int:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer._client.cluster.partitions_for_topic(topic) or set()
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    return sum(ends.values())


async def _meter_loop(charger: SimCharger, interval_s: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(random.uniform(0, interval_s))
    reading = {"connector_id": 1, "power_kw": 11.0, "energy_kwh": 5.0, "soc_percent": None}
    while not stop.is_set():
        await charger.send_readings([{**reading, "event_ts": iso(time.time())}])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def measure(settings: GatewaySettings, n: int, sizes: GatewaySizes, workdir: Path) -> dict:
    """One charger count: connect, run the meter load, send commands, report."""
    await ensure_topics(settings)
    gateway = await GatewayProcess(settings, workdir / f"gateway-{n}.log").start()
    received: dict[int, float] = {}

    def on_profile(station_id: str, action: str, payload: dict, at: float) -> None:
        received[payload["csChargingProfiles"]["chargingProfileId"]] = at

    url = f"ws://127.0.0.1:{settings.gateway_port}"
    chargers = [SimCharger(url, f"B-{i:05d}", "1.6", on_profile=on_profile) for i in range(n)]
    stop = asyncio.Event()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    await consumer.start()
    await producer.start()
    loops: list[asyncio.Task] = []
    try:
        started = time.monotonic()
        for i in range(0, n, 250):
            await asyncio.gather(*(c.connect() for c in chargers[i:i + 250]))
            say(f"    {min(i + 250, n):,} / {n:,} chargers connected")
        connect_s = time.monotonic() - started
        # The simulated chargers live until the end: keep the load generator's own full
        # collections (over a second at 5,000) out of the gateway's delivery figures.
        gc.collect()
        gc.freeze()
        loops = [asyncio.create_task(_meter_loop(c, sizes.meter_interval_s, stop))
                 for c in chargers]
        await asyncio.sleep(sizes.meter_interval_s)  # every charger is in its rhythm
        topic = settings.topics.meter_values
        before, t0 = await _topic_end(consumer, topic), time.monotonic()
        cpu0, own0 = gateway.cpu_s(), time.process_time()
        GC_PAUSES_S.clear()
        sent_at: dict[int, float] = {}
        gap = sizes.measure_s / sizes.commands
        for k in range(sizes.commands):
            station_id = chargers[random.randrange(n)].station_id
            signal_id = f"BENCH-{k}"
            message = sample_command(station_id, f"bench-{n}-{k}", signal_id=signal_id)
            sent_at[profile_id_for(signal_id, station_id)] = time.time()
            await producer.send(settings.topics.commands, codec.dumps(message),
                                key=station_id.encode())
            await asyncio.sleep(gap)
        forwarded = await _topic_end(consumer, topic) - before
        window = time.monotonic() - t0
        gateway_cpu = (gateway.cpu_s() - cpu0) / window
        chargers_cpu = (time.process_time() - own0) / window
        chargers_gc_ms = 1000 * max(GC_PAUSES_S, default=0.0)
        await asyncio.sleep(2.0)  # the last commands' answers
        rss = gateway.rss_mb()
        held = sum(c.booted.is_set() for c in chargers)
        latencies = sorted((received[p] - sent) * 1000.0 for p, sent in sent_at.items()
                           if p in received)
    finally:
        stop.set()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in chargers), return_exceptions=True)
        await producer.stop()
        await consumer.stop()
        gateway.stop()
        gc.unfreeze()
    return {"chargers": n, "connections_held": held, "connect_s": round(connect_s, 1),
            "meter_values_per_s": round(forwarded / window, 1),
            "expected_per_s": round(n / sizes.meter_interval_s, 1),
            "gateway_rss_mb": round(rss, 1),
            "gateway_cpu_pct": round(100 * gateway_cpu, 1),
            "chargers_cpu_pct": round(100 * chargers_cpu, 1),
            "load_avg_1m": round(os.getloadavg()[0], 1),
            "gateway_gc_max_ms": _longest_gc_ms(workdir / f"gateway-{n}.log"),
            "chargers_gc_max_ms": round(chargers_gc_ms, 1), "commands": sizes.commands,
            "delivered": len(latencies), "delivery_ms_p50": _rank(latencies, 50),
            "delivery_ms_p99": _rank(latencies, 99),
            "delivery_ms_max": round(latencies[-1], 1) if latencies else None}


def _longest_gc_ms(log_path: Path) -> float:
    """The gateway logs full collections over 50 ms; the longest, or 0."""
    found = re.findall(r"full garbage collection took (\d+) ms", log_path.read_text())
    return float(max((int(ms) for ms in found), default=0))


def _rank(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile: always one of the measured values."""
    if not ordered:
        return float("nan")
    return round(ordered[max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)], 1)


async def gateway_phase(bench: Any) -> None:
    """`evgrid bench --phases gateway`."""
    sizes = GATEWAY_SMOKE if bench.sizes.messages < 100_000 else GatewaySizes()
    raise_fd_limit()
    _watch_gc()
    say(f"gateway: {', '.join(f'{n:,}' for n in sizes.chargers)} OCPP 1.6 chargers, "
        f"MeterValues every {sizes.meter_interval_s:g} s")
    rows = []
    for n in sizes.chargers:
        settings = bench.settings("gateway", partitions=4).derive(
            GatewaySettings, gateway_port=free_port())
        row = await measure(settings, n, sizes, bench.workdir)
        say(f"    {row}")
        rows.append(row)
    bench.results["gateway"] = {"sizes": asdict(sizes), "runs": rows}


def report_rows(results: dict) -> list[tuple[str, str, str]]:
    rows = []
    for r in results.get("gateway", {}).get("runs", []):
        n = f"{r['chargers']:,}"
        rows += [
            (f"gateway: connections held of {n}", f"{r['connections_held']:,}", "≥ 5,000"),
            (f"gateway: meter values/s forwarded, {n} chargers",
             f"{r['meter_values_per_s']:,.0f} (of {r['expected_per_s']:,.0f})", ""),
            (f"gateway: command delivery p50 / p99 ms, {n} chargers",
             f"{r['delivery_ms_p50']:.1f} / {r['delivery_ms_p99']:.1f}",
             "p99 ≤ 50 at 1,000"),
            (f"gateway: RSS, {n} chargers", f"{r['gateway_rss_mb']:.0f} MB", ""),
            (f"gateway / simulated chargers CPU, {n} chargers (machine load)",
             f"{r['gateway_cpu_pct']:.0f} % / {r['chargers_cpu_pct']:.0f} % "
             f"(load {r['load_avg_1m']})", ""),
        ]
    return rows


async def run(bench: Any) -> dict:
    await gateway_phase(bench)
    return bench.results["gateway"]


def rows(result: dict) -> list[tuple[str, str]]:
    return [(measure, figure) for measure, figure, _target in report_rows({"gateway": result})]


PHASE = Phase("gateway", "OCPP chargers through evgrid gateway: connections, meter values/s, "
              "command delivery", run, rows)
