"""Ingestion on the real broker: validated readings in state, dead letters for every
malformed message, state that survives a SIGTERM restart."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.integration.harness import (
    WorkerProcess,
    drain,
    isolated_settings,
    jdump,
    produce,
)

pytestmark = pytest.mark.integration

STATIONS = 300
CONNECTORS = 3


def reading(i: int, now: float) -> dict:
    station, connector = divmod(i, CONNECTORS)
    return {
        "station_id": f"ST-{station:04d}",
        "connector_id": connector + 1,
        "session_id": f"s-{i}",
        "connector_type": "Type2" if connector == 2 else "CCS",
        "power_kw": 10.0 + connector,
        "current_a": 16.0,
        "voltage_v": 400.0,
        "energy_kwh": 1.5,
        "soc_percent": None if connector == 2 else 50,
        "event_ts": datetime.fromtimestamp(now, UTC).isoformat(),
    }


def malformed(kind: int, j: int, now: float) -> tuple[bytes, bytes]:
    """Ten distinct ways to be wrong, each with its own reason."""
    good = reading(j % 900, now)
    key = good["station_id"].encode()
    bad: list[bytes] = [
        b"{definitely not json",
        jdump({**good, "power_kw": -3.0}),
        jdump({**good, "soc_percent": 140}),
        jdump({**good, "connector_type": "GB/T"}),
        jdump({k: v for k, v in good.items() if k != "station_id"}),
        jdump({**good, "event_ts": "last tuesday"}),
        b'{"station_id": "ST-0001", "power_kw": NaN}',
        jdump({**good, "power_kw": "7.4"}),
        b"\xff\xfe\x00garbage",
        jdump([good]),
    ]
    return key, bad[kind]


async def test_thousand_messages_hundred_dead_letters_then_restart(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        now = time.time()
        records: list[tuple[bytes, bytes]] = []
        for i in range(900):
            good = reading(i, now)
            records.append((good["station_id"].encode(), jdump(good)))
            if i % 9 == 8:  # 100 malformed, interleaved with the good ones
                records.append(malformed((i // 9) % 10, i, now))
        assert len(records) == 1000
        await produce(kafka_broker.bootstrap, settings.topics.meter_values, records)

        letters = await drain(
            kafka_broker.bootstrap,
            settings.topics.deadletter,
            until=lambda got: len(got) >= 100,
            timeout=60,
        )
        # Give any extra (wrong) dead letters a moment to show up before counting exactly.
        letters = await drain(
            kafka_broker.bootstrap, settings.topics.deadletter, until=lambda got: False, timeout=2
        )
        assert len(letters) == 100, Counter(d["reason"] for d in letters)
        reasons = Counter(d["reason"] for d in letters)
        assert len(reasons) == 10, reasons
        assert all(n == 10 for n in reasons.values()), reasons
        for letter in letters:
            assert letter["source_topic"] == settings.topics.meter_values
            assert letter["error"] and letter["raw_size"] > 0
        binary = [d for d in letters if d["reason"] == "invalid_utf8"]
        assert binary and all(d["raw_encoding"] == "base64" for d in binary)

        status, text = await worker.get("/metrics")
        assert status == 200
        assert "evgrid_readings_total 900.0" in text
        assert worker.alive()

        await assert_all_stations(worker)
        assert worker.stop() == 0, worker.log_tail()

        restarted = WorkerProcess(settings, tmp_path / "worker2.log").start()
        try:
            await restarted.wait_ready()
            await assert_all_stations(restarted)
        finally:
            restarted.stop()
    finally:
        worker.stop()


async def assert_all_stations(worker: WorkerProcess) -> None:
    for station in range(STATIONS):
        status, body = await worker.get(f"/stations/ST-{station:04d}")
        assert status == 200, body
        powers = {c["connector_id"]: c["power_kw"] for c in body["connectors"]}
        assert powers == {1: 10.0, 2: 11.0, 3: 12.0}, (station, body)
