"""A rebalance keeps the state of the partitions that stay. A second worker joins;
the first keeps half its partitions in memory — not reloaded, not replayed — and both answer
for every station."""

from __future__ import annotations

import time

import pytest

from evgrid.timeutil import iso
from tests.integration.harness import (
    WorkerProcess,
    free_port,
    isolated_settings,
    jdump,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

STATIONS = [f"R{i:02d}" for i in range(40)]


async def test_partitions_that_stay_keep_their_state_across_a_rebalance(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "w1",
                                 partitions=4, checkpoint_interval_s=600.0)
    settings2 = settings.model_copy(update={"data_dir": tmp_path / "w2",
                                            "web_port": free_port()})
    t, b = settings.topics, kafka_broker.bootstrap
    w1 = WorkerProcess(settings, tmp_path / "w1.log").start()
    w2 = WorkerProcess(settings2, tmp_path / "w2.log")
    try:
        await w1.wait_ready()
        await produce(b, t.station_zones, [(s.encode(), jdump({
            "station_id": s, "zone_id": "ZK", "max_station_kw": 100.0,
            "contract_max_kw": 100.0})) for s in STATIONS])
        now = time.time()
        await produce(b, t.meter_values, [(s.encode(), jdump({
            "station_id": s, "connector_id": 1, "session_id": "k", "connector_type": "CCS",
            "power_kw": 10.0 + i, "event_ts": iso(now)})) for i, s in enumerate(STATIONS)])

        async def applied(worker: WorkerProcess, n: int):
            got = await worker.metric("evgrid_readings_total")
            return got == n, got

        await wait_for(lambda: applied(w1, len(STATIONS)), 30, interval=0.2)
        assert await w1.metric("evgrid_ingest_partitions_loaded_total") == 4
        w2.start()
        await w2.wait_ready()

        async def split():
            a = await w1.metric("evgrid_ingest_partitions_loaded_total")
            c = await w2.metric("evgrid_ingest_partitions_loaded_total")
            return c == 2, (a, c)

        await wait_for(split, 40, interval=0.5)

        async def both_answer():
            for i, station_id in enumerate(STATIONS):
                status, body = await (w1 if i % 2 else w2).get(f"/stations/{station_id}")
                if status != 200 or body["load_kw"] != 10.0 + i:
                    return False, body
            return True, None

        # Any worker answers for any station (table_route): once both answer for all of them,
        # w2 has loaded its two partitions.
        await wait_for(both_answer, 30, "both workers answering for every station")
        # w1 reloaded nothing and replayed nothing: the two partitions it kept stayed in memory.
        assert await w1.metric("evgrid_ingest_partitions_loaded_total") == 4
        assert await w1.metric("evgrid_readings_total") == len(STATIONS)
        assert await w1.metric("evgrid_readings_superseded_total") == 0
        # w2 rebuilt its two from the checkpoints written when w1 gave them up: no replay.
        assert await w2.metric("evgrid_readings_total") == 0
    finally:
        w2.stop()
        w1.stop()
