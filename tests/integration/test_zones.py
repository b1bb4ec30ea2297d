"""On the real broker: zone totals from station rows, moves and tombstones, and JSON views
answered by either of two workers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.harness import (
    WorkerProcess,
    drain,
    free_port,
    isolated_settings,
    jdump,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

ZONES = ["Z-north", "Z-east", "Z-south"]


def mapping(station: int, zone: str) -> dict:
    return {
        "station_id": f"ST-{station:03d}",
        "zone_id": zone,
        "max_station_kw": 300.0,
        "contract_max_kw": 250.0,
        "connector_max_kw": {"CCS": 150.0, "Type2": 22.0},
    }


def meter(station: int, connector: int, kw: float, ts: float) -> dict:
    return {
        "station_id": f"ST-{station:03d}",
        "connector_id": connector,
        "session_id": f"s-{station}-{connector}",
        "connector_type": "CCS",
        "power_kw": kw,
        "current_a": kw * 1000 / 400,
        "voltage_v": 400.0,
        "energy_kwh": 5.0,
        "soc_percent": 50,
        "event_ts": datetime.fromtimestamp(ts, UTC).isoformat(),
    }


def station_kw(station: int) -> float:
    return 20.0 + station  # connector 1; connector 2 draws 10 kW


#: What a worker's INFO log says about each rebalance: the generation it joined, when Faust's
#: recovery ended (or was superseded), what the batch consumers took up, which zones moved.
REBALANCE_LINES = ("Joined group", "Restore complete", "rebalancing again", "owns partitions",
                   "evgrid zones:", "WARNING", "ERROR")


def rebalance_steps(worker: WorkerProcess) -> str:
    lines = worker.log_tail(100_000).splitlines()
    return "\n".join(line[:240] for line in lines if any(k in line for k in REBALANCE_LINES))


async def station_rows_log(bootstrap: str, settings) -> str:
    """Every record of the station-rows topic (partition, offset, Kafka time, station, zone
    or tombstone, connectors): what a zone owner reading it back could have seen."""
    topic = settings.internal_topics.station_rows
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    lines = []
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        for _ in range(20):
            batch = await reader.getmany(timeout_ms=200)
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    v = orjson.loads(r.value) if r.value else {}
                    lines.append(f"{r.partition}@{r.offset} {r.timestamp % 100_000:>5} "
                                 f"{r.key.decode()} {v.get('zone_id', 'tombstone')} "
                                 f"{v.get('connectors')}")
    finally:
        await reader.stop()
    return "\n".join(lines)


#: Fields of a view that move with the moment it is asked.
MOMENT = ("as_of", "load_age_s")


def answer_differences(a: dict, b: dict, expected: dict) -> dict:
    """Only what differs between the workers' answers, and each total against expected."""
    out = {}
    for zone_id in ZONES:
        keys = set(a[zone_id]) | set(b[zone_id])
        out[zone_id] = {
            "expected_kw": expected[zone_id],
            "w1_total_kw": a[zone_id].get("zone_total_power_kw"),
            "differs": {k: (a[zone_id].get(k), b[zone_id].get(k)) for k in sorted(keys)
                        if k not in MOMENT and a[zone_id].get(k) != b[zone_id].get(k)},
        }
    return out


async def zone(worker: WorkerProcess, zone_id: str) -> dict:
    status, body = await worker.get(f"/zones/{zone_id}")
    assert status in (200, 404), body
    return body if status == 200 else {}


async def gauged_zones(worker: WorkerProcess) -> list[str]:
    """The zones whose load gauge the worker exports."""
    _, text = await worker.get("/metrics")
    prefix = 'evgrid_zone_load_kw{zone="'
    return [line[len(prefix):].split('"', 1)[0] for line in text.splitlines()
            if line.startswith(prefix)]


async def test_zone_totals_moves_tombstones_and_two_workers(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    # INFO: on failure, the rebalance steps of both workers are printed (REBALANCE_LINES).
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "w1",
                                 log_level="info")
    w1 = WorkerProcess(settings, tmp_path / "w1.log").start()
    settings2 = settings.model_copy(
        update={"data_dir": tmp_path / "w2", "web_port": free_port()}
    )
    w2 = WorkerProcess(settings2, tmp_path / "w2.log")
    try:
        await w1.wait_ready()
        t = settings.topics
        maps = [(f"ST-{i:03d}".encode(), jdump(mapping(i, ZONES[i % 3]))) for i in range(30)]
        await produce(kafka_broker.bootstrap, t.station_zones, maps)
        now = time.time()
        readings = []
        for i in range(30):
            for c, kw in ((1, station_kw(i)), (2, 10.0)):
                readings.append((f"ST-{i:03d}".encode(), jdump(meter(i, c, kw, now))))
        await produce(kafka_broker.bootstrap, t.meter_values, readings)

        expected = {z: sum(station_kw(i) + 10 for i in range(30) if ZONES[i % 3] == z)
                    for z in ZONES}

        async def totals_right():
            got = {z: (await zone(w1, z)).get("zone_total_power_kw") for z in ZONES}
            ok = all(got[z] is not None and abs(got[z] - expected[z]) < 1e-6 for z in ZONES)
            return ok, got

        await wait_for(totals_right, 30)
        for z in ZONES:
            body = await zone(w1, z)
            listed = sum(s["load_kw"] for s in body["station_list"])
            assert body["zone_total_power_kw"] == pytest.approx(listed)
            assert body["zone_capacity_kw"] == pytest.approx(300.0 * 10)
            assert body["stations_active"] == 10

        # ST-000 moves from Z-north to Z-east; ST-001 (Z-east) is tombstoned.
        moved_kw = station_kw(0) + 10
        gone_kw = station_kw(1) + 10
        await produce(
            kafka_broker.bootstrap,
            t.station_zones,
            [(b"ST-000", jdump(mapping(0, "Z-east"))), (b"ST-001", None)],
        )
        expected["Z-north"] -= moved_kw
        expected["Z-east"] += moved_kw - gone_kw
        elapsed = await wait_for(totals_right, 10)
        print(f"move + tombstone reflected after {elapsed:.2f}s")
        assert elapsed <= 2.0

        # A second worker joins; both answer /zones/{id} identically.
        w2.start()
        await w2.wait_ready()
        await w1.wait_ready()

        async def same_answers():
            a = {z: await zone(w1, z) for z in ZONES}
            b = {z: await zone(w2, z) for z in ZONES}
            strip = lambda d: {k: v for k, v in d.items() if k not in MOMENT}  # noqa: E731
            ok = all(a[z] and strip(a[z]) == strip(b[z]) for z in ZONES)
            ok = ok and all(
                abs(a[z]["zone_total_power_kw"] - expected[z]) < 1e-6 for z in ZONES
            )
            return ok, answer_differences(a, b, expected)

        try:
            await wait_for(same_answers, 30, interval=0.5)
        except AssertionError as exc:  # what each worker saw, for the post-mortem
            views = {}
            for i in range(30):
                station_id = f"ST-{i:03d}"
                status, body = await w1.get(f"/stations/{station_id}")
                views[station_id] = (status, body.get("zone_id"), body.get("load_kw"),
                                     len(body.get("connectors", [])))
            _, health1 = await w1.get("/health")
            _, health2 = await w2.get("/health")
            raise AssertionError(f"{exc}\nstations (status, zone, kW, connectors): {views}\n"
                                 f"health: {health1} / {health2}\n"
                                 f"w1 rebalance steps:\n{rebalance_steps(w1)}\n"
                                 f"w2 rebalance steps:\n{rebalance_steps(w2)}\n"
                                 f"station rows:\n"
                                 f"{await station_rows_log(kafka_broker.bootstrap, settings)}"
                                 ) from None

        # Each zone's gauges come from its owner alone: w1 removed the series of the zones
        # it handed to w2, rather than exporting their last figures beside w2's.
        async def each_zone_gauged_once():
            seen = sorted(await gauged_zones(w1) + await gauged_zones(w2))
            return seen == sorted(ZONES), seen

        await wait_for(each_zone_gauged_once, 10)
        assert await gauged_zones(w2), "w2 owns none of the zones: the check above is empty"
    finally:
        w2.stop()
        w1.stop()


async def test_unmapped_station_joins_and_contract_alert_per_episode(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    # Five minutes of history replayed at once: a stale limit that covers it.
    settings = isolated_settings(
        kafka_broker.bootstrap, unique_prefix, tmp_path / "data", stale_after_s=600.0
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    t = settings.topics
    try:
        await worker.wait_ready()
        now = time.time()
        # ST-900 reports before anyone says where it is.
        await produce(kafka_broker.bootstrap, t.meter_values,
                      [(b"ST-900", jdump(meter(900, 1, 42.0, now - 300)))])

        async def unmapped():
            _, text = await worker.get("/metrics")
            return "evgrid_stations_unmapped 1.0" in text, text[-300:]

        await wait_for(unmapped, 15)
        _, text = await worker.get("/metrics")
        assert "evgrid_readings_unmapped_total 1.0" in text
        await produce(kafka_broker.bootstrap, t.station_zones,
                      [(b"ST-900", jdump({**mapping(900, "Z-late"), "contract_max_kw": 100.0}))])

        async def joined():
            body = await zone(worker, "Z-late")
            return body.get("zone_total_power_kw") == 42.0, body

        await wait_for(joined, 10)

        # Oscillating ±1 % around the 100 kW contract, a reading every 10 s for 5 minutes.
        readings = [
            (b"ST-900", jdump(meter(900, 1, 101.0 if i % 2 else 99.0, now - 290 + 10 * i)))
            for i in range(29)
        ]
        await produce(kafka_broker.bootstrap, t.meter_values, readings)
        await produce(kafka_broker.bootstrap, t.meter_values,
                      [(b"ST-900", jdump(meter(900, 1, 60.0, now)))])
        alerts = await drain(kafka_broker.bootstrap, t.overload_alerts,
                             until=lambda got: len(got) >= 2, timeout=15)
        alerts = await drain(kafka_broker.bootstrap, t.overload_alerts,
                             until=lambda got: False, timeout=2)
        contract = [a["alert_type"] for a in alerts if a.get("station_id") == "ST-900"]
        assert contract == ["CONTRACT_OVERLOAD", "CONTRACT_OVERLOAD_CLEARED"], alerts
    finally:
        worker.stop()
