"""Reliability: a worker killed with SIGKILL mid-event comes back with the same decisions.

The restarted worker recovers its tables (RocksDB + changelog), keeps the baseline and cap,
sends no different target (any repeated decision carries the same command_id), still sends
the CLEARs when the event ends, and publishes exactly one complete report for the event."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.accounting import (
    CountingStations,
    decisions_persisted,
    duplicated_decisions,
    readings_accounted,
)
from tests.chaos.report import ChaosRow, record
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    isolated_settings,
    jdump,
    produce,
    wait_for,
)
from tests.integration.test_dr_loop import dr, mapping, zone_load

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


async def test_kill_9_during_active_event(kafka_broker, unique_prefix, tmp_path) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data")
    t, b = settings.topics, kafka_broker.bootstrap
    worker = WorkerProcess(settings, tmp_path / "w1.log").start()
    restarted = WorkerProcess(settings, tmp_path / "w2.log")
    try:
        await worker.wait_ready()
        loads = {f"C{i}": 40.0 + 10 * i for i in range(6)}
        await produce(b, t.station_zones,
                      [(s.encode(), jdump(mapping(s, "ZX"))) for s in loads])
        stations = CountingStations(b, t.meter_values, loads)
        await stations.report()
        await zone_load(worker, "ZX", sum(loads.values()))
        now = time.time()
        end = now + 25.0
        async with Collector(b, t.commands, t.dr_status, t.dr_reports) as seen:
            await produce(b, t.demand_response,
                          [(b"ZX", jdump(dr("DR-X", "ZX", "CURTAIL", 90.0, now, end)))])
            first = await seen.wait(t.commands, lambda c: len(c) >= len(loads))
            before = {c["station_id"]: (c["target_power_kw"], c["command_id"]) for c in first}
            status = await seen.wait(t.dr_status, lambda s: any(
                x["state"] == "ACTIVE" for x in s))
            active = [x for x in status if x["state"] == "ACTIVE"][-1]
            stations.loads.update({s: v[0] for s, v in before.items()})
            await stations.report()
            await wait_for(lambda: decisions_persisted(settings, first), 30,
                           "the decisions in the zone-control changelog", interval=0.5)

            worker.kill()  # kill -9 mid-event
            restarted.start()
            await restarted.wait_ready()
            for _ in range(4):
                await stations.report()
                await asyncio.sleep(1.0)

            cmds = await seen.wait(t.commands, lambda c: sum(
                x["action"] == "CLEAR" for x in c) >= len(loads), timeout=40)
            sets = [c for c in cmds if c["action"] == "SET"]
            for c in sets:  # nothing new: the same decision, or a duplicate of it
                assert (c["target_power_kw"], c["command_id"]) == before[c["station_id"]], c
            clears = [c for c in cmds if c["action"] == "CLEAR"]
            assert sorted(c["station_id"] for c in clears) == sorted(loads)
            assert len({c["command_id"] for c in clears}) == len(loads)
            # The ENDED status leaves in the same step as the CLEARs, just after them on
            # another topic, so the reader may see it a moment later.
            await seen.wait(t.dr_status, lambda s: any(x["state"] == "ENDED" for x in s),
                            timeout=10)
            after = [x for x in seen.messages[t.dr_status] if x["_seen"] > active["_seen"]]
            for x in after:
                assert x["baseline_kw"] == active["baseline_kw"]
                assert x["cap_kw"] == active["cap_kw"]
            assert after and after[-1]["state"] == "ENDED"

            # One settlement report, complete, though the event straddled the crash (that
            # there is only one is checked at the end, when a second would have come).
            reports = await seen.wait(t.dr_reports, lambda r: len(r) >= 1)
            report = reports[0]
            assert report["signal_id"] == "DR-X"
            assert report["baseline_kw"] == active["baseline_kw"]
            assert report["actual_start_ts"] is not None and report["actual_end_ts"] is not None
            assert sorted(x["station_id"] for x in report["stations"]) == sorted(loads)
            assert report["baseline_energy_kwh"] > report["drawn_energy_kwh"] > 0
            assert report["ended_by"] == "END"

            # Processing guarantee: every decision (one SET and one CLEAR per station) went
            # out, none twice under different ids, and every reading is in state.
            assert len({c["command_id"] for c in cmds}) == 2 * len(loads)
            same, new = duplicated_decisions(cmds)
            assert new == 0
            accounted = await readings_accounted(restarted, stations)
            row = record(ChaosRow("worker crash mid-event", "kill -9 worker", stations.sent,
                                  accounted, same, new))
            assert row.lost == 0
            reports = seen.messages[t.dr_reports]
            assert [r["signal_id"] for r in reports] == ["DR-X"], reports
    finally:
        worker.kill()
        restarted.stop()
