"""Chargers with wrong clocks, on the real broker: a reading stamped an hour ahead
is dead-lettered and freezes nothing; a charger three hours behind counts at its real load with
its offset visible and one CLOCK_SKEW alert; a clock that jumps back after a reboot is
followed."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.harness import (
    Collector,
    WorkerProcess,
    isolated_settings,
    jdump,
    produce,
)
from tests.integration.test_dr_loop import mapping, meter, zone_load

pytestmark = pytest.mark.integration


async def station(worker: WorkerProcess, station_id: str) -> dict:
    status, body = await worker.get(f"/stations/{station_id}")
    assert status == 200, body
    return body


async def until(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        last = await check()
        if last[0] or time.monotonic() > deadline:
            return last
        await asyncio.sleep(0.2)


async def test_wrong_clocks_neither_freeze_nor_vanish(kafka_broker, unique_prefix, tmp_path):
    # A 2 s tolerance (instead of 60) so the reboot case needs seconds, not minutes.
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 future_tolerance_s=2.0)
    t, b = settings.topics, kafka_broker.bootstrap
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        await produce(b, t.station_zones, [(s.encode(), jdump(mapping(s, "ZC")))
                                           for s in ("FUT", "LAG", "RBT")])
        async with Collector(b, t.deadletter, t.station_alerts) as seen:
            now = time.time()
            # An hour ahead, then correct readings at 10 kW.
            await produce(b, t.meter_values, [(b"FUT", jdump(meter("FUT", 50.0, now + 3600)))])
            for i in range(3):
                await produce(b, t.meter_values, [(b"FUT", jdump(meter("FUT", 10.0,
                                                                        now + i)))])
            # Three hours behind (local time sent as UTC), steadily.
            for _ in range(4):
                await produce(b, t.meter_values, [(b"LAG", jdump(meter(
                    "LAG", 22.0, time.time() - 3 * 3600)))])
                await asyncio.sleep(0.3)
            letters = await seen.wait(t.deadletter, lambda d: len(d) >= 1)
            assert [x["reason"] for x in letters] == ["event_ts_in_future"]
            assert "clock" in letters[0]["error"]
            fut = await station(worker, "FUT")
            assert fut["load_kw"] == 10.0, fut
            lag = await until(lambda: _lag_ok(worker))
            assert lag[0], lag
            assert lag[1]["clock_offset_s"] == pytest.approx(3 * 3600, abs=30)
            alerts = await seen.wait(t.station_alerts, lambda a: any(
                x["station_id"] == "LAG" for x in a))
            assert [x["alert_type"] for x in alerts if x["station_id"] == "LAG"] == [
                "CLOCK_SKEW"]
            await zone_load(worker, "ZC", 10.0 + 22.0)

            # A reboot: the clock jumps an hour back; heard > tolerance later, it is followed.
            t0 = time.time()
            await produce(b, t.meter_values, [(b"RBT", jdump(meter("RBT", 30.0, t0)))])
            await asyncio.sleep(3.0)
            await produce(b, t.meter_values, [(b"RBT", jdump(meter("RBT", 12.0,
                                                                    t0 - 3600)))])
            rbt = await until(lambda: _load_is(worker, "RBT", 12.0))
            assert rbt[0], rbt
            assert rbt[1]["clock_resets"] == 1
    finally:
        worker.stop()


async def _lag_ok(worker: WorkerProcess) -> tuple[bool, dict]:
    body = await station(worker, "LAG")
    return body["load_kw"] == 22.0 and body["clock_offset_s"] is not None, body


async def _load_is(worker: WorkerProcess, station_id: str, kw: float) -> tuple[bool, dict]:
    body = await station(worker, station_id)
    return body["load_kw"] == kw, body
