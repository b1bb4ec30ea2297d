"""On the real broker, under live readings: one worker, then a second and a third join, then
the first is killed with SIGKILL. After each step every live worker answers every zone's total
(routed to the zone's owner), and it is the sum of the stations' latest loads: a zone that
moved was rebuilt from the station-rows log, whatever the rebalance did to messages in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from evgrid.topics import ensure_topics
from tests.integration.harness import (
    WorkerProcess,
    free_port,
    isolated_settings,
    jdump,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

ZONES = [f"Z{i}" for i in range(6)]
STATIONS = 60
CONNECTORS = 2


def kw(station: int, connector: int) -> float:
    return 5.0 + (station * 7 + connector * 3) % 40


EXPECTED = {zone: sum(kw(s, c) for s in range(STATIONS) if ZONES[s % len(ZONES)] == zone
                      for c in range(1, CONNECTORS + 1)) for zone in ZONES}


def mapping(station: int) -> tuple[bytes, bytes]:
    sid = f"JL-{station:03d}"
    return sid.encode(), jdump({"station_id": sid, "zone_id": ZONES[station % len(ZONES)],
                                "max_station_kw": 200.0, "contract_max_kw": 200.0})


async def live_readings(bootstrap: str, topic: str, stop: asyncio.Event) -> int:
    """Every connector reports its (constant) power once a second, newly stamped, until
    stopped: the readings are live, the truth they add up to does not move."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    rounds = 0
    try:
        while not stop.is_set():
            ts = time.time()
            for s in range(STATIONS):
                for c in range(1, CONNECTORS + 1):
                    sid = f"JL-{s:03d}"
                    await producer.send(topic, orjson.dumps({
                        "station_id": sid, "connector_id": c, "session_id": f"s{c}",
                        "connector_type": "CCS", "power_kw": kw(s, c), "current_a": 50.0,
                        "voltage_v": 400.0, "energy_kwh": 1.0, "soc_percent": 50,
                        "event_ts": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ts))}"
                                    f".{int(ts % 1 * 1e6):06d}Z"}), key=sid.encode())
            await producer.flush()
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await producer.stop()
    return rounds


async def totals(worker: WorkerProcess) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for zone in ZONES:
        try:
            status, body = await worker.get(f"/zones/{zone}")
        except Exception:  # a worker between owners may not answer for a moment
            status, body = 0, {}
        out[zone] = body.get("zone_total_power_kw") if status == 200 else None
    return out


async def every_worker_right(workers: list[WorkerProcess], timeout: float) -> float:
    """Wait until every live worker answers every zone within 0.5 % of the truth; returns
    how long it took."""
    start = time.monotonic()
    seen: dict[str, dict] = {}
    while time.monotonic() - start < timeout:
        seen = {w.url: await totals(w) for w in workers}
        if all(got[z] is not None and abs(got[z] - EXPECTED[z]) <= 0.005 * EXPECTED[z]
               for got in seen.values() for z in ZONES):
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: expected {EXPECTED}, seen {seen}")


async def active_partitions(workers: list[WorkerProcess]) -> int:
    """Partitions the workers hold, counted once they are all ready (0 while one is not)."""
    held = 0
    for w in workers:
        status, body = await w.get("/health")
        if status != 200:
            return 0
        held += body["active_partitions"]
    return held


async def test_workers_join_and_leave_under_live_readings(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    # Six partitions, so each of three workers owns some (Faust leaves a joining worker idle
    # while the others are within ceil(partitions / workers)).
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "w1",
                                 partitions=6)
    await ensure_topics(settings)
    workers = [WorkerProcess(settings, tmp_path / "w1.log").start()]
    for n in (2, 3):
        other = settings.model_copy(update={"data_dir": tmp_path / f"w{n}",
                                            "web_port": free_port()})
        workers.append(WorkerProcess(other, tmp_path / f"w{n}.log"))
    stop = asyncio.Event()
    feed = None
    try:
        await workers[0].wait_ready()
        await produce(kafka_broker.bootstrap, settings.topics.station_zones,
                      [mapping(s) for s in range(STATIONS)])
        feed = asyncio.create_task(live_readings(kafka_broker.bootstrap,
                                                 settings.topics.meter_values, stop))
        took = {"one worker": await every_worker_right(workers[:1], 30)}
        for n in (1, 2):
            workers[n].start()
            for w in workers[: n + 1]:
                await w.wait_ready(timeout=60)
            took[f"worker {n + 1} joined"] = await every_worker_right(workers[: n + 1], 45)
        everyone = 0

        async def all_ready() -> bool:
            nonlocal everyone
            everyone = await active_partitions(workers)
            return everyone > 0

        await wait_for(all_ready, 30, "the three workers ready")
        workers[0].kill()
        live = workers[1:]

        async def taken_over() -> tuple[bool, int]:  # at the survivors' session timeout
            held = await active_partitions(live)
            return held == everyone, held

        await wait_for(taken_over, 60, "the survivors holding every partition")
        took["first killed"] = await every_worker_right(live, 60)
        print(f"right after: {took}")
        for w in live:
            assert "Crashed reason" not in w.log_tail(100_000)
    finally:
        stop.set()
        if feed is not None:
            await feed
        for w in workers:
            w.stop()
