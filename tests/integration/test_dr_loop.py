"""The DR control loop end to end on the real broker; the test plays the stations."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from evgrid.timeutil import iso
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    jdump,
    produce,
)

pytestmark = pytest.mark.integration


def mapping(sid: str, zone: str) -> dict:
    return {"station_id": sid, "zone_id": zone, "max_station_kw": 200.0,
            "contract_max_kw": 200.0, "connector_max_kw": {"CCS": 150.0}}


def meter(sid: str, kw: float, ts: float) -> dict:
    return {"station_id": sid, "connector_id": 1, "session_id": f"sess-{sid}" if kw else None,
            "connector_type": "CCS", "power_kw": round(kw, 3), "current_a": kw * 2.5,
            "voltage_v": 400.0, "energy_kwh": 1.0, "soc_percent": 40, "event_ts": iso(ts)}


def dr(signal_id: str, zone: str, kind: str, target: float, start: float, end: float,
       received: float | None = None, priority: int = 2) -> dict:
    return {"signal_id": signal_id, "zone_id": zone, "signal_type": kind,
            "target_reduction_kw": target, "start_ts": iso(start), "end_ts": iso(end),
            "priority": priority, "received_ts": iso(received or time.time())}


class Stations:
    """The fleet as the test plays it: loads per station, reported on demand."""

    def __init__(self, bootstrap: str, topic: str, loads: dict[str, float]) -> None:
        self.bootstrap, self.topic, self.loads = bootstrap, topic, dict(loads)

    async def report(self, ts: float | None = None, only: list[str] | None = None) -> None:
        ts = ts or time.time()
        records = [(sid.encode(), jdump(meter(sid, kw, ts))) for sid, kw in self.loads.items()
                   if only is None or sid in only]
        await produce(self.bootstrap, self.topic, records)


def latest_targets(commands: list[dict]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for c in commands:
        out[c["station_id"]] = c["target_power_kw"] if c["action"] == "SET" else None
    return out


async def setup_zone(bootstrap, t, zone: str, loads: dict[str, float]) -> Stations:
    await produce(bootstrap, t.station_zones,
                  [(sid.encode(), jdump(mapping(sid, zone))) for sid in loads])
    stations = Stations(bootstrap, t.meter_values, loads)
    await stations.report()
    return stations


async def zone_load(w: WorkerProcess, zone: str, expected: float) -> None:
    for _ in range(100):
        status, body = await w.get(f"/zones/{zone}")
        if status == 200 and abs(body["zone_total_power_kw"] - expected) < 1e-6:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"zone {zone} never reached {expected} kW: {body}")


async def test_curtail_no_ratchet_noncompliance_new_session_restore(worker, kafka_broker):
    t, b = worker.settings.topics, kafka_broker.bootstrap
    loads = {f"S{i:02d}": 50.0 + 5 * i for i in range(10)}
    stations = await setup_zone(b, t, "Z1", {**loads, "S10": 0.0})
    baseline = sum(loads.values())
    await zone_load(worker, "Z1", baseline)
    cap = 0.7 * baseline
    now = time.time()
    async with Collector(b, t.commands, t.compliance_alerts, t.dr_status, t.dr_reports) as seen:
        await produce(b, t.demand_response,
                      [(b"Z1", jdump(dr("DR-1", "Z1", "CURTAIL", 0.3 * baseline, now,
                                        now + 600)))])
        cmds = await seen.wait(t.commands, lambda c: len(c) >= 10)
        first = latest_targets(cmds)
        assert len(cmds) == 10 and set(first) == set(loads)
        assert sum(first.values()) == pytest.approx(cap, abs=0.1)
        assert all(first[s] <= loads[s] + 1e-9 for s in first)
        status = await seen.wait(t.dr_status, lambda s: any(x["state"] == "ACTIVE" for x in s))
        assert status[-1]["baseline_kw"] == pytest.approx(baseline)
        assert status[-1]["cap_kw"] == pytest.approx(cap)

        # Three minutes of readings at their targets (event time 10 s apart): no new SET.
        # The event's status follows the zone's load (it is re-published when the load moves):
        # once it shows the stations at their targets, the controller has seen them there.
        stations.loads.update(first)
        start = time.time()
        for i in range(18, -1, -1):
            await stations.report(ts=start - 10 * i)
        at_targets = sum(first.values())
        await seen.wait(t.dr_status, lambda s: abs(s[-1]["current_kw"] - at_targets) < 1.0)
        assert len(seen.messages[t.commands]) == 10, seen.messages[t.commands][10:]

        # S09 keeps drawing its old load: non-compliant after the grace, others re-allocated.
        stations.loads["S09"] = loads["S09"]
        for _ in range(8):
            await stations.report()
            await asyncio.sleep(0.75)
        alerts = await seen.wait(t.compliance_alerts, lambda a: len(a) >= 1, timeout=15)
        assert alerts[0]["state"] == "NONCOMPLIANT" and alerts[0]["station_id"] == "S09"

        def others_of(commands: list[dict]) -> dict[str, float | None]:
            return {s: v for s, v in latest_targets(commands).items() if s != "S09"}

        # The others are re-allocated what S09 leaves of the cap.
        await seen.wait(t.commands, lambda c: abs(
            sum(others_of(c).values()) - (cap - loads["S09"])) <= 0.1, timeout=15)
        others = others_of(seen.messages[t.commands])
        assert sum(others.values()) + loads["S09"] <= cap + 0.1

        # A car plugs in at S10 mid-event: it is brought under the cap.
        stations.loads.update(others)
        stations.loads["S10"] = 60.0
        n_before = len(seen.messages[t.commands])
        await stations.report()
        await seen.wait(t.commands, lambda c: any(
            x["station_id"] == "S10" for x in c[n_before:]), timeout=10)
        # S10's share comes out of the others': their targets settle under the cap again.
        await seen.wait(t.commands, lambda c: sum(
            others_of(c).values()) + loads["S09"] <= cap + 0.1, timeout=10)
        targets = latest_targets(seen.messages[t.commands])
        assert "S10" in targets and targets["S10"] <= 60.0

        # RESTORE: exactly one CLEAR per commanded station.
        commanded = {c["station_id"] for c in seen.messages[t.commands]}
        n_before = len(seen.messages[t.commands])
        await produce(b, t.demand_response, [(b"Z1", jdump(dr(
            "DR-1", "Z1", "RESTORE", 0.0, now, now + 600, received=time.time())))])
        # The event ends in the step that clears its stations: once it says ENDED and the
        # clears are in, nothing more is due.
        ended = await seen.wait(t.dr_status, lambda s: s[-1]["state"] == "ENDED")
        assert ended[-1]["signal_id"] == "DR-1"
        await seen.wait(t.commands, lambda c: len(c) >= n_before + len(commanded))
        clears = [c for c in seen.messages[t.commands][n_before:]]
        assert all(c["action"] == "CLEAR" for c in clears)
        assert sorted(c["station_id"] for c in clears) == sorted(commanded)
        ids = [c["command_id"] for c in seen.messages[t.commands]]
        assert len(ids) == len(set(ids))
        # Its settlement report: the stations that obeyed delivered, S09 did not.
        (report,) = await seen.wait(t.dr_reports, lambda r: len(r) >= 1)
        assert report["signal_id"] == "DR-1" and report["ended_by"] == "RESTORE"
        assert report["baseline_kw"] == pytest.approx(baseline)
        assert 0 < report["drawn_energy_kwh"] < report["baseline_energy_kwh"]
        assert report["delivered_kwh"] == pytest.approx(
            report["baseline_energy_kwh"] - report["drawn_energy_kwh"], abs=1e-6)
        s09 = next(x for x in report["stations"] if x["station_id"] == "S09")
        assert s09["seconds_noncompliant"] > 0


async def test_scheduled_activation_and_end_without_messages(worker, kafka_broker):
    t, b = worker.settings.topics, kafka_broker.bootstrap
    loads = {f"A{i}": 40.0 for i in range(5)}
    await setup_zone(b, t, "Z2", loads)
    await zone_load(worker, "Z2", 200.0)
    start = time.time() + 5.0
    end = start + 4.0
    async with Collector(b, t.commands, t.dr_status, t.dr_reports) as seen:
        await produce(b, t.demand_response,
                      [(b"Z2", jdump(dr("DR-2", "Z2", "CURTAIL", 50.0, start, end)))])
        await seen.wait(t.dr_status, lambda s: any(x["state"] == "SCHEDULED" for x in s))
        assert not seen.messages[t.commands]
        sets = await seen.wait(t.commands, lambda c: len(c) >= 5, timeout=15)
        late = max(datetime.fromisoformat(c["command_ts"]).timestamp() - start for c in sets)
        print(f"activation {late * 1000:.0f} ms after start_ts")
        assert 0.0 <= late <= 1.0
        assert sum(c["target_power_kw"] for c in sets) == pytest.approx(150.0, abs=0.1)
        clears = await seen.wait(t.commands, lambda c: len(c) >= 10, timeout=15)
        for c in clears[5:]:
            assert c["action"] == "CLEAR"
            assert c["_seen"] - end <= 1.0, f"CLEAR {c['_seen'] - end:.2f}s after end_ts"
        # The report, against a hand computation: these stations never lower their 200 kW,
        # so over the event's duration d the zone drew exactly what the baseline says.
        (report,) = await seen.wait(t.dr_reports, lambda r: len(r) >= 1)
        d = report["duration_s"]
        assert d == pytest.approx(end - start, abs=1.0)
        kwh = 200.0 * d / 3600
        assert report["baseline_energy_kwh"] == pytest.approx(kwh, rel=0.005)
        assert report["drawn_energy_kwh"] == pytest.approx(kwh, rel=0.005)
        assert abs(report["delivered_kwh"]) <= 0.005 * kwh
        assert report["target_kwh"] == pytest.approx(50.0 * d / 3600, rel=0.005)
        assert report["time_to_cap_s"] is None  # the zone never got under its 150 kW cap
        for station in report["stations"]:
            assert station["measured_avg_kw"] == pytest.approx(40.0, rel=0.005)


async def test_shed_suspends_curtail_reports_shortfall(worker, kafka_broker):
    t, b = worker.settings.topics, kafka_broker.bootstrap
    await setup_zone(b, t, "ZS", {f"H{i}": 30.0 for i in range(4)})
    await setup_zone(b, t, "ZC", {f"C{i}": 30.0 for i in range(4)})
    await zone_load(worker, "ZS", 120.0)
    await zone_load(worker, "ZC", 120.0)
    now = time.time()
    async with Collector(b, t.commands, t.dr_status) as seen:
        await produce(b, t.demand_response, [
            (b"ZS", jdump(dr("SHED-1", "ZS", "SHED", 200.0, now, now + 60))),
            (b"ZC", jdump(dr("CURT-1", "ZC", "CURTAIL", 200.0, now, now + 60))),
        ])
        cmds = await seen.wait(t.commands, lambda c: len(c) >= 8)
        shed = [c["target_power_kw"] for c in cmds if c["zone_id"] == "ZS"]
        curt = [c["target_power_kw"] for c in cmds if c["zone_id"] == "ZC"]
        assert shed == [0.0] * 4
        assert curt == [pytest.approx(5.0)] * 4  # the DC minimum floor
        status = await seen.wait(t.dr_status, lambda s: {x["signal_id"] for x in s
                                                          if x["state"] == "ACTIVE"} >= {
            "SHED-1", "CURT-1"})
        by = {x["signal_id"]: x for x in status if x["state"] == "ACTIVE"}
        assert by["SHED-1"]["shortfall_kw"] == 0.0
        assert by["CURT-1"]["shortfall_kw"] == pytest.approx(20.0)


async def test_dr_signal_with_wrong_key_is_rerouted(worker, kafka_broker):
    t, b = worker.settings.topics, kafka_broker.bootstrap
    await setup_zone(b, t, "ZK", {"K1": 80.0})
    await zone_load(worker, "ZK", 80.0)
    now = time.time()
    async with Collector(b, t.commands) as seen:
        await produce(b, t.demand_response,
                      [(b"not-the-zone", jdump(dr("DR-K", "ZK", "CURTAIL", 30.0, now,
                                                  now + 60)))])
        cmds = await seen.wait(t.commands, lambda c: len(c) >= 1)
        assert cmds[0]["station_id"] == "K1" and cmds[0]["target_power_kw"] == 50.0
