"""Producing benchmark data, and the raw baseline: aiokafka + orjson over the same topic."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from evgrid.timeutil import iso


def station_id(n: int) -> str:
    return f"B{n:06d}"


async def produce_mappings(bootstrap: str, topic: str, stations: int, zones: int,
                           offset: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        for n in range(offset, offset + stations):
            sid = station_id(n)
            value = orjson.dumps({"station_id": sid, "zone_id": f"BZ{n % zones:03d}",
                                  "max_station_kw": 300.0, "contract_max_kw": 280.0,
                                  "connector_max_kw": {"CCS": 150.0}})
            await producer.send(topic, value, key=sid.encode())
        await producer.flush()
    finally:
        await producer.stop()


def reading(n: int, stations: int, connectors: int, ts: float, offset: int = 0) -> tuple[
    bytes, bytes
]:
    """The n-th reading: stations in turn, connectors in turn, power that varies (so the
    worker cannot skip work a steady value would let it skip)."""
    sid = station_id(offset + n % stations)
    cid = 1 + (n // stations) % connectors
    value = orjson.dumps({
        "station_id": sid, "connector_id": cid, "session_id": f"s{cid}",
        "connector_type": "CCS", "power_kw": 20.0 + (n * 7919) % 120,
        "current_a": 100.0, "voltage_v": 400.0, "energy_kwh": 1.0, "soc_percent": 50,
        "event_ts": iso(ts),
    })
    return sid.encode(), value


async def preload(bootstrap: str, topic: str, count: int, stations: int, connectors: int,
                  offset: int = 0, progress: bool = True) -> float:
    """Produce `count` readings as fast as the broker takes them; returns messages/s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50,
                                max_batch_size=1024 * 1024, acks=1)
    await producer.start()
    started = time.monotonic()
    # Event times step forward so every reading is newer than its connector's last one.
    base = time.time() - 60.0
    step = 50.0 / max(count, 1)
    try:
        pending = []
        for n in range(count):
            key, value = reading(n, stations, connectors, base + n * step, offset)
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                if progress and n % 200_000 < 20_000:
                    print(f"  preloaded {n + 1:,} / {count:,}", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count / (time.monotonic() - started)


async def raw_baseline(bootstrap: str, topic: str, count: int) -> float:
    """A bare aiokafka consumer with orjson parsing every value: the ceiling a Python
    consumer on this machine reaches, against which the worker's rate is put."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.monotonic()
            for msgs in batch.values():
                for m in msgs:
                    orjson.loads(m.value)
                    seen += 1
    finally:
        await consumer.stop()
    return seen / (time.monotonic() - (started or time.monotonic()))


async def stream_readings(bootstrap: str, topic: str, rate: float, stations: int,
                          stop: asyncio.Event, offset: int = 0) -> int:
    """Background meter values at a fixed rate, until `stop` is set."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                key, value = reading(sent, stations, 2, time.time(), offset)
                await producer.send(topic, value, key=key)
                sent += 1
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()
    return sent
