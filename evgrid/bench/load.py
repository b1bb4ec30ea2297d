"""Producing benchmark data: zone mappings, preloaded backlogs and paced streams of readings.

Every client is built from the one KafkaSettings object, so the bench reaches a TLS/SASL broker
with the worker's own `EVGRID_BROKER_SECURITY_*` settings. Records go into per-partition
batches (murmur2 of the key, as the worker expects) instead of one future per message: the
generator shares the cores with the worker and must cost it as little as possible, and a
1,000,000-connector fleet must be cheap to build (memory stays at a few batches in flight).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from evgrid.settings import KafkaSettings
from evgrid.timeutil import iso

#: Batches in flight before the writer waits for the broker's acks.
MAX_IN_FLIGHT = 32
#: Keys whose partition is remembered: a paced stream's stations, not a whole 1M fleet.
PARTITION_CACHE = 100_000


def station_id(n: int) -> str:
    return f"B{n:06d}"


def zone_id(n: int, zones: int) -> str:
    return f"BZ{n % zones:03d}"


def producer(settings: KafkaSettings, **kw: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                            **settings.kafka_client_kwargs(), **kw)


def consumer(settings: KafkaSettings, *topics: str, **kw: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, bootstrap_servers=settings.bootstrap_servers,
                            **settings.kafka_client_kwargs(), **kw)


class BatchWriter:
    """Appends records to one batch per partition and sends full batches; `flush` sends the
    rest and waits for every ack."""

    def __init__(self, settings: KafkaSettings, topic: str, batch_bytes: int = 256 * 1024) -> None:
        self.topic = topic
        self.producer = producer(settings, max_batch_size=batch_bytes, acks=1)
        self.partitioner = DefaultPartitioner()
        self.partitions: list[int] = []
        self.partition_of: dict[bytes, int] = {}
        self.batches: dict[int, Any] = {}
        self.in_flight: list[asyncio.Future] = []
        self.sent = 0

    async def __aenter__(self) -> BatchWriter:
        await self.producer.start()
        self.partitions = sorted(await self.producer.partitions_for(self.topic))
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            await self.producer.stop()

    async def append(self, key: bytes, value: bytes) -> None:
        partition = self.partition_of.get(key)
        if partition is None:
            partition = self.partitioner(key, self.partitions, self.partitions)
            if len(self.partition_of) < PARTITION_CACHE:
                self.partition_of[key] = partition
        batch = self.batches.get(partition)
        if batch is None:
            batch = self.batches[partition] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it
            await self._send(partition)
            batch = self.batches[partition] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
        self.sent += 1

    async def _send(self, partition: int) -> None:
        batch = self.batches.pop(partition)
        self.in_flight.append(await self.producer.send_batch(batch, self.topic,
                                                             partition=partition))
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            await asyncio.gather(*self.in_flight)
            self.in_flight.clear()

    async def send_pending(self) -> None:
        """Send every partly filled batch now (a paced stream's tick)."""
        for partition in list(self.batches):
            await self._send(partition)

    async def flush(self) -> None:
        await self.send_pending()
        await asyncio.gather(*self.in_flight)
        self.in_flight.clear()


#: With sites, each zone's stations are spread over this many sites (depots).
SITES_PER_ZONE = 10


def site_id(n: int, zones: int) -> str:
    return f"{zone_id(n, zones)}-S{(n // zones) % SITES_PER_ZONE}"


def mapping(n: int, zones: int, sites: bool = False) -> tuple[bytes, bytes]:
    station = station_id(n)
    return station.encode(), orjson.dumps({
        "station_id": station, "zone_id": zone_id(n, zones), "max_station_kw": 300.0,
        "contract_max_kw": 280.0, "connector_max_kw": {"CCS": 150.0},
        **({"site_id": site_id(n, zones)} if sites else {}),
    })


async def produce_sites(settings: KafkaSettings, zones: int, max_kw: float) -> None:
    """`SITES_PER_ZONE` sites in every zone, each behind `max_kw` (5 % margin)."""
    async with BatchWriter(settings, settings.topics.sites) as out:
        for z in range(zones):
            for k in range(SITES_PER_ZONE):
                site = f"{zone_id(z, zones)}-S{k}"
                await out.append(site.encode(), orjson.dumps({
                    "site_id": site, "zone_id": zone_id(z, zones), "max_kw": max_kw,
                    "margin_pct": 5.0}))


def reading(n: int, stations: int, connectors: int, event_ts: str, offset: int = 0
            ) -> tuple[bytes, bytes]:
    """The n-th reading: stations in turn, connectors in turn, power that varies (so the
    worker cannot skip work a steady value would let it skip)."""
    station = station_id(offset + n % stations)
    connector_id = 1 + (n // stations) % connectors
    return station.encode(), orjson.dumps({
        "station_id": station, "connector_id": connector_id, "session_id": f"s{connector_id}",
        "connector_type": "CCS", "power_kw": 20.0 + (n * 7919) % 120,
        "current_a": 100.0, "voltage_v": 400.0, "energy_kwh": 1.0, "soc_percent": 50,
        "event_ts": event_ts,
    })


async def produce_mappings(settings: KafkaSettings, stations: int, zones: int,
                           offset: int = 0, sites: bool = False) -> None:
    async with BatchWriter(settings, settings.topics.station_zones) as out:
        for n in range(offset, offset + stations):
            await out.append(*mapping(n, zones, sites))


async def preload(settings: KafkaSettings, count: int, stations: int, connectors: int,
                  offset: int = 0, progress: bool = True) -> float:
    """Produce `count` readings as fast as the broker takes them; returns messages/s.
    Event times step forward so every reading is newer than its connector's last one."""
    started = time.monotonic()
    base = time.time() - 60.0
    step = 50.0 / max(count, 1)
    async with BatchWriter(settings, settings.topics.meter_values) as out:
        for n in range(count):
            await out.append(*reading(n, stations, connectors, iso(base + n * step), offset))
            if progress and n % 200_000 == 199_999:
                print(f"    preloaded {n + 1:,} / {count:,}", flush=True)
    return count / (time.monotonic() - started)


class Pace:
    """A stream's offered rate, which its owner may change while it runs (the saturated
    condition holds it at a multiple of what the worker applies)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate


async def stream_readings(settings: KafkaSettings, pace: Pace | float, stations: int,
                          stop: asyncio.Event, connectors: int = 2, offset: int = 0,
                          tick_s: float = 0.01) -> dict[str, float]:
    """Meter values at the pace's rate until `stop` is set, sent every tick; returns what was
    actually offered (the generator shares the cores, so it may fall short: it says so)."""
    pace = pace if isinstance(pace, Pace) else Pace(pace)
    sent = 0
    due = 0.0
    started = last = time.monotonic()
    async with BatchWriter(settings, settings.topics.meter_values, 64 * 1024) as out:
        while not stop.is_set():
            now = time.monotonic()
            due += (now - last) * pace.rate
            last = now
            stamp = iso(time.time())
            while sent < int(due):
                await out.append(*reading(sent, stations, connectors, stamp, offset))
                sent += 1
            await out.send_pending()
            await asyncio.sleep(tick_s)
    elapsed = time.monotonic() - started
    return {"sent": sent, "seconds": elapsed, "offered_rate": sent / max(elapsed, 1e-9)}
