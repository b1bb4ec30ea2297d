"""Producers that do not partition like Kafka's Java client: librdkafka's default
(CRC32, as kcat, confluent-kafka and many gateways use) puts a right key in another partition
than murmur2 does. With two workers, every station must still reach its zone and every signal
its zone's owner."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Producer

from evgrid.state.tables_io import partition_of
from evgrid.timeutil import iso
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    free_port,
    isolated_settings,
    jdump,
    wait_for,
)
from tests.integration.test_zones import zone

pytestmark = pytest.mark.integration

ZONES = ["ZP-1", "ZP-2", "ZP-3", "ZP-4"]
STATIONS = [f"P{i:02d}" for i in range(40)]
PARTITIONS = 4


def crc32_produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> set[int]:
    """Produce with librdkafka's default partitioner; returns the partitions it chose."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "consistent_random",
                         "linger.ms": 5})
    chosen: set[int] = set()

    def delivered(err, msg) -> None:
        assert err is None, err
        chosen.add(msg.partition())

    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return chosen


def crc32_disagrees(keys: list[str]) -> int:
    import zlib

    return sum(1 for k in keys
               if zlib.crc32(k.encode()) % PARTITIONS != partition_of(k, PARTITIONS))


async def test_crc32_partitioned_inputs_reach_their_zones_with_two_workers(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    assert crc32_disagrees(STATIONS) >= 10 and crc32_disagrees(ZONES) >= 1  # a real test
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "w1",
                                 partitions=PARTITIONS)
    settings2 = settings.model_copy(
        update={"data_dir": tmp_path / "w2", "web_port": free_port()})
    w1 = WorkerProcess(settings, tmp_path / "w1.log").start()
    w2 = WorkerProcess(settings2, tmp_path / "w2.log").start()
    t, b = settings.topics, kafka_broker.bootstrap
    try:
        await asyncio.gather(w1.wait_ready(), w2.wait_ready())
        zone_of = {s: ZONES[i % len(ZONES)] for i, s in enumerate(STATIONS)}
        await asyncio.to_thread(crc32_produce, b, t.station_zones, [
            (s, jdump({"station_id": s, "zone_id": zone_of[s], "max_station_kw": 100.0,
                       "contract_max_kw": 100.0})) for s in STATIONS])
        now = time.time()
        await asyncio.to_thread(crc32_produce, b, t.meter_values, [
            (s, jdump({"station_id": s, "connector_id": 1, "session_id": f"x-{s}",
                       "connector_type": "CCS", "power_kw": 10.0, "event_ts": iso(now)}))
            for s in STATIONS])
        expected = {z: 10.0 * sum(1 for s in STATIONS if zone_of[s] == z) for z in ZONES}

        async def every_station_in_its_zone():
            seen = {z: await zone(w1 if i % 2 else w2, z) for i, z in enumerate(ZONES)}
            ok = all(seen[z] and seen[z]["zone_total_power_kw"] == expected[z]
                     and seen[z]["stations"] == expected[z] / 10.0 for z in ZONES)
            return ok, {z: seen[z].get("zone_total_power_kw") for z in ZONES}

        await wait_for(every_station_in_its_zone, 60, interval=0.5)

        async with Collector(b, t.commands) as commands:
            await asyncio.to_thread(crc32_produce, b, t.demand_response, [
                (z, jdump({"signal_id": f"sig-{z}", "zone_id": z, "signal_type": "CURTAIL",
                           "target_reduction_kw": 40.0, "start_ts": iso(time.time() - 1),
                           "end_ts": iso(time.time() + 600), "priority": 2,
                           "received_ts": iso(time.time())})) for z in ZONES])
            members = {z: {s for s in STATIONS if zone_of[s] == z} for z in ZONES}

            def every_zone_commanded(msgs: list[dict]) -> bool:
                got = {z: {m["station_id"] for m in msgs if m["zone_id"] == z} for z in ZONES}
                return got == members

            msgs = await commands.wait(t.commands, every_zone_commanded, timeout=30)
        for z in ZONES:
            targets = [m["target_power_kw"] for m in msgs if m["zone_id"] == z]
            assert sum(targets) == pytest.approx(expected[z] - 40.0)
        # Any worker answers for any event: it asks its peer when the zone is not its own.
        for worker in (w1, w2):
            for z in ZONES:
                status, body = await worker.get(f"/events/sig-{z}")
                assert status == 200 and body["zone_id"] == z, body
                assert body["event"]["state"] == "ACTIVE" and body["governing"]
            status, _ = await worker.get("/events/no-such-signal")
            assert status == 404
        for worker in (w1, w2):
            assert worker.alive(), worker.log_tail()
        rerouted = sum([await w.metric("evgrid_repartitioned_total") for w in (w1, w2)])
        assert rerouted >= crc32_disagrees(STATIONS)
    finally:
        w2.stop()
        w1.stop()
