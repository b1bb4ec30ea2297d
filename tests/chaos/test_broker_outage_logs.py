"""The broker goes away for 20 s under a worker logging at its production level (info): the
worker's log stays a few lines, the metric and /health say disconnected while it lasts, and
afterwards every reading is applied — produced before the outage, sent during it (delivered
once the broker is back) and after it."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from evgrid.broker.local import LocalKafka
from tests.integration.harness import WorkerProcess, isolated_settings, jdump, produce, wait_for
from tests.integration.test_dr_loop import mapping, meter

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

OUTAGE_S = 20.0
MAX_LINES = 50
STATIONS = [f"Q{i:02d}" for i in range(20)]


async def deliver_through_outage(producer: AIOKafkaProducer, topic: str,
                                 records: list[tuple[bytes, bytes]]) -> None:
    """Send while the broker is down, retrying until it acknowledges (as a gateway does)."""
    try:
        for key, value in records:
            while True:
                try:
                    await (await producer.send(topic, value=value, key=key))
                    break
                except KafkaError:
                    await asyncio.sleep(0.5)
    finally:
        await producer.stop()


async def test_quiet_log_through_a_20_s_outage(unique_prefix, tmp_path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "kafka", port=0)
    await asyncio.to_thread(broker.start)
    settings = isolated_settings(broker.bootstrap, unique_prefix, tmp_path / "data",
                                 log_level="info")
    t, b = settings.topics, broker.bootstrap
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log).start()
    try:
        await worker.wait_ready()
        await produce(b, t.station_zones, [(s.encode(), jdump(mapping(s, "ZQ")))
                                           for s in STATIONS])
        before = time.time()
        await produce(b, t.meter_values, [(s.encode(), jdump(meter(s, 10.0, before)))
                                          for s in STATIONS])

        async def applied(n: int) -> bool:
            return await worker.metric("evgrid_readings_total") >= n

        await wait_for(lambda: applied(len(STATIONS)), 30, "the first readings")
        assert (await worker.get("/health"))[1]["broker_connected"] is True, worker.log_tail()
        assert await worker.metric("evgrid_broker_connected") == 1

        producer = AIOKafkaProducer(bootstrap_servers=b, acks="all", enable_idempotence=True,
                                    retry_backoff_ms=500)
        await producer.start()  # while the broker is up: it knows the partitions
        start = len(log.read_bytes().splitlines())
        down = time.monotonic()
        await asyncio.to_thread(broker.stop)
        during = time.time()
        sending = asyncio.create_task(deliver_through_outage(producer, t.meter_values, [
            (s.encode(), jdump(meter(s, 20.0, during))) for s in STATIONS]))

        async def disconnected() -> bool:
            return (await worker.get("/health"))[1]["broker_connected"] is False

        await wait_for(disconnected, OUTAGE_S, "/health to say broker_connected: false")
        assert await worker.metric("evgrid_broker_connected") == 0
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
        assert worker.alive(), worker.log_tail()
        await asyncio.to_thread(broker.start)

        async def reconnected() -> bool:
            return (await worker.get("/health"))[1]["broker_connected"] is True

        await wait_for(reconnected, 30, "/health to say broker_connected: true")
        assert await worker.metric("evgrid_broker_connected") == 1
        await asyncio.wait_for(sending, 60)
        outage_log = log.read_bytes().splitlines()[start:]
        text = b"\n".join(outage_log).decode(errors="replace")
        assert len(outage_log) <= MAX_LINES, text[-4000:]
        assert text.count("Kafka broker unreachable") == 1, text[-4000:]
        assert text.count("Kafka broker reachable again") == 1, text[-4000:]
        assert text.count("Unable connect to node") <= 1, text[-4000:]  # only in the first

        after = time.time()
        await produce(b, t.meter_values, [(s.encode(), jdump(meter(s, 30.0, after)))
                                          for s in STATIONS])
        await wait_for(lambda: applied(3 * len(STATIONS)), 40, "the readings after the outage")

        async def zone_load() -> bool:
            status, body = await worker.get("/zones/ZQ")
            return status == 200 and body["zone_total_power_kw"] == 30.0 * len(STATIONS)

        await wait_for(zone_load, 20, "zone ZQ at every station's newest reading")
        assert await worker.metric("evgrid_readings_total") == 3 * len(STATIONS)
        print(f"outage {OUTAGE_S:.0f} s: {len(outage_log)} worker log lines from stop to "
              f"reconnect:\n{text}")
    finally:
        worker.stop()
        await asyncio.to_thread(broker.cleanup)
