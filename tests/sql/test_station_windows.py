"""The worker publishes each station's closed window on `grid.station_windows`, one record per
station per window, and the sink turns them into `station_current_load`: a real worker, real
readings (2-second windows so the test takes seconds), steady loads worked out by hand."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise

import asyncpg
import pytest

from evgrid.process import WorkerProcess
from evgrid.settings import SqlSettings
from tests.integration.harness import Collector, isolated_settings, jdump, produce
from tests.sql.sinks import running

pytestmark = pytest.mark.integration

#: station -> connector powers (kW), each connector with its own session
FLEET = {"SW-A": (11.0,), "SW-B": (7.0, 15.0)}
WINDOW_S = 2.0


def mapping(station_id: str) -> tuple[bytes, bytes]:
    return station_id.encode(), jdump({"station_id": station_id, "zone_id": "ZW",
                                       "max_station_kw": 50.0, "contract_max_kw": 50.0})


def readings(now: float) -> list[tuple[bytes, bytes]]:
    ts = datetime.fromtimestamp(now, UTC).isoformat()
    return [(station.encode(), jdump({
        "station_id": station, "connector_id": i + 1, "session_id": f"{station}-{i}",
        "connector_type": "CCS", "power_kw": kw, "current_a": 20.0, "voltage_v": 400.0,
        "energy_kwh": 1.0, "soc_percent": 50, "event_ts": ts}))
        for station, powers in FLEET.items() for i, kw in enumerate(powers)]


async def test_one_record_per_station_per_closed_window_into_station_current_load(
        kafka_broker, unique_prefix, tmp_path, sql_dsn) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 window_s=WINDOW_S, allowed_lateness_s=1.0)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        await produce(kafka_broker.bootstrap, settings.topics.station_zones,
                      [mapping(s) for s in FLEET])
        async with Collector(kafka_broker.bootstrap, settings.topics.station_windows) as seen:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                await produce(kafka_broker.bootstrap, settings.topics.meter_values,
                              readings(time.time()))
                per_station = Counter(m["station_id"] for m in
                                      seen.messages[settings.topics.station_windows])
                if all(per_station[s] >= 3 for s in FLEET):
                    break
                await asyncio.sleep(0.25)
            windows = list(seen.messages[settings.topics.station_windows])
    finally:
        worker.stop()

    by_station: dict[str, list[dict]] = {s: [] for s in FLEET}
    for w in windows:
        by_station[w["station_id"]].append(w)
    for station, powers in FLEET.items():
        got = by_station[station]
        assert len(got) >= 3, windows
        starts = [datetime.fromisoformat(w["window_start"]).timestamp() for w in got]
        assert len(set(starts)) == len(starts), f"{station}: a window published twice"
        assert starts == sorted(starts)
        assert [b - a for a, b in pairwise(starts)] == \
            [WINDOW_S] * (len(starts) - 1), f"{station}: a window missing"
        for w in got:
            assert w["_key"] == station and w["zone_id"] == "ZW"
            assert w["total_power_kw"] == pytest.approx(sum(powers))
            assert w["active_connectors"] == len(powers)
            assert w["active_sessions"] == len(powers)
            assert w["max_connector_power_kw"] == max(powers)
            assert w["avg_power_per_connector_kw"] == pytest.approx(sum(powers) / len(powers))

    # The sink: the newest closed window of each station is its station_current_load row.
    async with running(settings.derive(SqlSettings, sql_dsn=sql_dsn)) as sink:
        deadline = time.monotonic() + 30
        while sink.records_committed < len(windows):
            assert time.monotonic() < deadline, "the sink did not take every window"
            await asyncio.sleep(0.05)
    conn = await asyncpg.connect(sql_dsn)
    try:
        rows = await conn.fetch("SELECT station_id, window_start, total_power_kw, "
                                "active_connectors FROM station_current_load ORDER BY 1")
        assert await conn.fetchval("SELECT count(*) FROM station_windows") == len(windows)
    finally:
        await conn.close()
    assert [(r["station_id"], r["window_start"].timestamp(), r["total_power_kw"],
             r["active_connectors"]) for r in rows] == [
        (s, max(datetime.fromisoformat(w["window_start"]).timestamp()
                for w in by_station[s]), pytest.approx(sum(FLEET[s])), len(FLEET[s]))
        for s in sorted(FLEET)]
