"""Reliability: a worker killed (-9) while the broker is away, holding decisions it took
during the outage. Restarted on the same data directory once the broker is back, it delivers
them: every commanded station gets its CLEAR, with the id it was decided under, the event its
ENDED status and one report."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from evgrid.broker.local import LocalKafka
from tests.chaos.accounting import duplicated_decisions
from tests.chaos.report import ChaosRow, record
from tests.chaos.test_broker_outage import crashed, of, ts_of
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    isolated_settings,
    jdump,
    produce,
    read_topic,
)
from tests.integration.test_dr_loop import Stations, dr, mapping, zone_load

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

KW = 30.0
Z1 = [f"K{i:02d}" for i in range(10)]


async def outputs_on_disk(worker: WorkerProcess, at_least: int, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while (n := await worker.metric("evgrid_outputs_on_disk")) < at_least:
        assert time.monotonic() < deadline, f"{n} outputs waiting: {worker.log_tail()}"
        await asyncio.sleep(0.2)
    return n


@pytest.mark.timeout(240)
async def test_worker_killed_during_an_outage_delivers_what_it_held(unique_prefix,
                                                                   tmp_path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "kafka", port=0)
    await asyncio.to_thread(broker.start)
    settings = isolated_settings(broker.bootstrap, unique_prefix, tmp_path / "data",
                                 partitions=1, stale_after_s=300.0, log_level="info")
    t, b = settings.topics, broker.bootstrap
    worker = WorkerProcess(settings, tmp_path / "w1.log").start()
    restarted = WorkerProcess(settings, tmp_path / "w2.log")
    try:
        await worker.wait_ready()
        await produce(b, t.station_zones, [(s.encode(), jdump(mapping(s, "Z1"))) for s in Z1])
        z1 = Stations(b, t.meter_values, dict.fromkeys(Z1, KW))
        await z1.report()
        await zone_load(worker, "Z1", KW * len(Z1))
        async with Collector(b, t.commands, t.dr_status, t.dr_reports) as seen:
            start = time.time() + 1.0
            end = start + 12.0
            await produce(b, t.demand_response, [(b"Z1", jdump(dr(
                "E1", "Z1", "CURTAIL", 0.3 * KW * len(Z1), start, end)))])
            sets = await seen.wait(t.commands, lambda c: len(c) >= len(Z1))
            assert {c["station_id"] for c in sets} == set(Z1)
            z1.loads.update({c["station_id"]: c["target_power_kw"] for c in sets})
            await z1.report()
            await asyncio.sleep(max(0.0, start + 4.0 - time.time()))

            await asyncio.to_thread(broker.kill)  # the broker goes (kill -9) ...
            went = time.time()
            # ... the event ends while it is away: the CLEARs, the ENDED status and the
            # report are decided on time and held, on disk.
            held = await outputs_on_disk(worker, len(Z1) + 2, timeout=end - went + 20.0)
            worker.kill()  # and the worker dies holding them
            await asyncio.to_thread(broker.start)
            back = time.time()
            restarted.start()
            await restarted.wait_ready()

            def cleared(c: list[dict]) -> bool:
                return {x["station_id"] for x in of(c, "E1", action="CLEAR")} == set(Z1)

            await seen.wait(t.commands, cleared, timeout=60)
            clears = of(seen.messages[t.commands], "E1", action="CLEAR")
            for c in clears:  # decided at the end, during the outage, by the first worker
                assert end <= ts_of(c["command_ts"]) <= end + 1.0 < back, c
            await seen.wait(t.dr_status, lambda s: bool(of(s, "E1", state="ENDED")))
            await seen.wait(t.dr_reports, lambda r: bool(of(r, "E1")))
            assert restarted.alive() and not crashed(restarted), restarted.log_tail()

            commands = [orjson.loads(m.value) for m in await read_topic(b, t.commands)]
            same, new = duplicated_decisions(commands)
            assert new == 0, commands
            status_log = [orjson.loads(m.value) for m in await read_topic(b, t.dr_status)]
            assert len(of(status_log, "E1", state="ENDED")) == 1
            report_log = [orjson.loads(m.value) for m in await read_topic(b, t.dr_reports)]
            assert len({r["report_id"] for r in of(report_log, "E1")}) == 1
            # The decisions that had to arrive: a CLEAR per station, the ENDED status, the
            # report; each found once (by id) in the topics.
            found = (len({c["command_id"] for c in of(commands, "E1", action="CLEAR")})
                     + len(of(status_log, "E1", state="ENDED"))
                     + len({r["report_id"] for r in of(report_log, "E1")}))
            row = record(ChaosRow(
                "worker killed while the broker is away, holding an event's end",
                f"kill -9 broker, then kill -9 worker; {held:.0f} outputs on disk, "
                f"{back - went:.0f}s down", len(Z1) + 2, found, same, new))
            assert row.lost == 0
    finally:
        worker.stop()
        restarted.stop()
        await asyncio.to_thread(broker.stop)
