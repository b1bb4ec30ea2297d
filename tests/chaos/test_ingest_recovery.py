"""The batch ingest killed with -9 while 10,000 readings/s arrive — mid-batch, and
(with checkpoints every 0.5 s over 2,000 stations) often mid-checkpoint. After each restart the
worker must resume exactly from its committed offsets: every reading at or after them is
re-read (applied or superseded by a newer one already checkpointed), none before them, every
reading whose offset was committed is in state and in its window, and every station ends at
its newest reading. The time to catch up is reported in the chaos table."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from evgrid.timeutil import iso
from tests.chaos.report import ChaosRow, record
from tests.integration.harness import (
    WorkerProcess,
    fetch_partitions,
    isolated_settings,
    jdump,
    produce,
    read_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

STATIONS = [f"K{i:04d}" for i in range(2000)]
RATE = 10_000  # readings/s offered


async def feed(bootstrap: str, topic: str, seconds: float, start_seq: int) -> int:
    """Readings at RATE for `seconds`: event time strictly increasing per station and power
    rising with it, so a window's peak shows whether a reading reached it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    seq = start_seq
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            for _ in range(RATE // 20):
                station_id = STATIONS[seq % len(STATIONS)]
                # Stamped now (a station's readings are 0.2 s apart: strictly increasing).
                body = {"station_id": station_id, "connector_id": 1, "session_id": "s",
                        "connector_type": "CCS", "power_kw": round(1.0 + seq / 1e5, 5),
                        "event_ts": int(time.time() * 1000)}
                await producer.send(topic, jdump(body), key=station_id.encode())
                seq += 1
            await asyncio.sleep(max(0.0, t0 + (seq - start_seq) / RATE - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()
    return seq


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        parts = sorted(await fetch_partitions(consumer, topic) or ())
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in parts}
    finally:
        await consumer.stop()


async def read_records(bootstrap: str, topic: str) -> dict[int, list[tuple[int, dict]]]:
    out: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    for m in await read_topic(bootstrap, topic):
        out[m.partition].append((m.offset, orjson.loads(m.value)))
    return out


async def caught_up(worker: WorkerProcess, expected: int, timeout: float = 90) -> float:
    """Seconds until applied + superseded reach `expected` with no lag left."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        done = (await worker.metric("evgrid_readings_total")
                + await worker.metric("evgrid_readings_superseded_total"))
        if done >= expected and await worker.metric("evgrid_consumer_lag") == 0:
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    raise AssertionError(f"not caught up within {timeout}s:\n{worker.log_tail()}")


async def station(worker: WorkerProcess, station_id: str) -> dict:
    status, body = await worker.get(f"/stations/{station_id}")
    assert status == 200, body
    return body


async def test_kill_9_mid_batch_and_mid_checkpoint_resumes_from_committed_offsets(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 partitions=4, checkpoint_interval_s=0.5, window_s=10.0,
                                 allowed_lateness_s=2.0, stale_after_s=3600.0)
    t, b = settings.topics, kafka_broker.bootstrap
    group = settings.ingest_group
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    rng = random.Random(11)
    recoveries: list[float] = []
    seq = 0
    try:
        await worker.wait_ready()
        await produce(b, t.station_zones, [
            (s.encode(), jdump({"station_id": s, "zone_id": f"KZ{i % 20}",
                                "max_station_kw": 150.0, "contract_max_kw": 150.0}))
            for i, s in enumerate(STATIONS)])
        for _cycle in range(2):
            feeding = asyncio.create_task(feed(b, t.meter_values, 6.0, seq))
            await asyncio.sleep(rng.uniform(3.0, 5.5))
            worker.kill()
            seq = await feeding
            committed = await committed_offsets(b, group, t.meter_values)
            records = await read_records(b, t.meter_values)
            worker = WorkerProcess(settings, tmp_path / "worker.log").start()
            started = time.monotonic()
            await worker.wait_ready()
            replayed = sum(1 for p, recs in records.items() for off, _ in recs
                           if off >= committed[p])
            await caught_up(worker, replayed)
            recoveries.append(time.monotonic() - started)
            # Exactly the records from the committed offsets on were re-read: none before.
            applied = await worker.metric("evgrid_readings_total")
            superseded = await worker.metric("evgrid_readings_superseded_total")
            assert applied + superseded == replayed, (applied, superseded, replayed, committed)
            await check_state(worker, records, committed, rng)
        total = sum(len(r) for r in records.values())
        row = record(ChaosRow(
            "ingest kill -9 at 10k readings/s",
            "kill -9 ×2 mid-batch/mid-checkpoint (checkpoint every 0.5 s); caught up "
            + " / ".join(f"{s:.1f}s" for s in recoveries) + " after restart",
            total, total))
        print(f"\ningest recovery after kill -9 at {RATE:,}/s: "
              + ", ".join(f"{s:.1f}s" for s in recoveries))
        assert row.lost == 0
    finally:
        with contextlib.suppress(Exception):
            worker.stop()


async def check_state(worker: WorkerProcess, records: dict[int, list[tuple[int, dict]]],
                      committed: dict[int, int], rng: random.Random) -> None:
    """Every station at its newest reading; the newest committed reading of a sample of
    stations inside the window that covers it."""
    newest: dict[str, dict] = {}
    newest_committed: dict[str, dict] = {}
    for partition, recs in records.items():
        for offset, body in recs:
            newest[body["station_id"]] = body
            if offset < committed[partition]:
                newest_committed[body["station_id"]] = body
    for station_id in rng.sample(sorted(newest), 60):
        body = await station(worker, station_id)
        held = body["connectors"][0]
        assert held["power_kw"] == newest[station_id]["power_kw"], (station_id, held)
        reading = newest_committed.get(station_id)
        if reading is None:
            continue
        ts = reading["event_ts"] / 1000
        window = [w for w in body["windows"]
                  if w["window_start"] <= iso(ts) < w["window_end"]]
        assert window, (station_id, ts, body["windows"])
        assert window[0]["max_connector_power_kw"] >= reading["power_kw"], (station_id, window)
