"""On the real broker: meter values flood in a second after the fleet's mappings are
produced, and zones are curtailed while the picture may still be settling. The zone side's
picture (members, limits, loads) does not wait behind the meter values: every station of every
curtailed zone is commanded, and soon."""

from __future__ import annotations

import pytest

from evgrid.bench.flood import FloodPlan, flood
from evgrid.topics import ensure_topics
from tests.integration.harness import WorkerProcess, isolated_settings

pytestmark = pytest.mark.integration

#: Small enough for the suite's shared cores, a flood all the same: more readings offered
#: than the mappings' and rows' consumers would see in a quiet fleet.
PLAN = FloodPlan(zones=20, per_zone=25, rate=6_000.0, lead_s=1.0, signals=5,
                 signal_gap_s=1.0, first_signal_s=1.0, timeout_s=30.0)


async def test_every_station_commanded_when_the_flood_starts_before_the_mappings_settle(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 partitions=4)
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        out = await flood(settings, PLAN)
    finally:
        worker.stop()
    short = {s: v["commanded"] for s, v in out["signals"].items()
             if v["commanded"] < PLAN.per_zone}
    assert out["every_station_commanded"], (short, worker.log_tail())
    print(f"signal -> last SET: {out['last_set_ms']} (offered {out['offered_rate']:,.0f}/s)")
    assert out["last_set_ms"]["p95"] <= 500.0, out["signals"]
