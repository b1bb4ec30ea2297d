"""End to end with chargers nobody on this project wrote — OCPP 1.6J on the Java library
eu.chargetime.ocpp:v1_6, OCPP 2.0.1 on the npm package ocpp-rpc — against a real worker,
the gateway and the local broker.

The charger that rejects its profile is re-allocated around as soon as its `Rejected` outcome
reaches the worker: the compliance grace is set long enough (60 s) that the
meter-verified non-compliance path cannot be what moves the others."""

from __future__ import annotations

import asyncio
import time

import pytest

from evgrid.settings import GatewaySettings
from evgrid.topics import ensure_topics
from tests.gateway.clients.external import ExternalCharger
from tests.gateway.conftest import start_gateway, url
from tests.gateway.test_gateway import assert_one_final_each
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    isolated_settings,
    jdump,
    produce,
)
from tests.integration.test_dr_loop import dr

pytestmark = pytest.mark.integration


def mapping(station_id: str, zone_id: str) -> dict:
    return {"station_id": station_id, "zone_id": zone_id, "max_station_kw": 22.0,
            "contract_max_kw": 22.0, "connector_max_kw": {"Type2": 22.0}}


async def poll(worker: WorkerProcess, path: str, ok, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    body: object = None
    while time.monotonic() < deadline:
        status, body = await worker.get(path)
        if status == 200 and ok(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never satisfied the condition: {body}")


async def test_java_and_node_chargers_through_a_dr_event(kafka_broker, unique_prefix,
                                                         tmp_path) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 compliance_grace_s=60.0)
    await ensure_topics(settings)
    t, b = settings.topics, kafka_broker.bootstrap
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    gateway = await start_gateway(settings.derive(GatewaySettings, gateway_port=0,
                                                  gateway_response_timeout_s=5.0))
    chargers: list[ExternalCharger] = []
    try:
        await worker.wait_ready()
        await produce(b, t.station_zones, [
            (sid.encode(), jdump(mapping(sid, zone))) for sid, zone in
            [("J-ACC", "ZE"), ("J-REJ", "ZE"), ("N-ACC", "ZE"), ("J-EXP", "ZX")]])
        ws = url(gateway)
        j_acc = ExternalCharger.java(ws, "J-ACC", accept=True, power_w=22000)
        j_rej = ExternalCharger.java(ws, "J-REJ", accept=False, power_w=22000)
        n_acc = ExternalCharger.node(ws, "N-ACC", accept=True, power_w=22000)
        j_exp = ExternalCharger.java(ws, "J-EXP", accept=True, power_w=11000)
        chargers = [j_acc, j_rej, n_acc, j_exp]
        for c in chargers:
            await c.start()
        for c in chargers:
            await c.wait_for("BOOTED")
        # Their meter values reach the worker's station view.
        for sid, kw in [("J-ACC", 22.0), ("J-REJ", 22.0), ("N-ACC", 22.0), ("J-EXP", 11.0)]:
            view = await poll(worker, f"/stations/{sid}", lambda v, kw=kw: abs(
                v["load_kw"] - kw) < 0.01)
            assert view["connectors"][0]["connector_type"] == "Type2"

        async with Collector(b, t.commands, t.outcomes, t.compliance_alerts) as seen:
            def outcomes(station_id: str, status: str) -> list[dict]:
                return [o for o in seen.messages[t.outcomes]
                        if o["station_id"] == station_id and o["status"] == status]

            now = time.time()
            await produce(b, t.demand_response, [
                (b"ZE", jdump(dr("DR-E", "ZE", "CURTAIL", 30.0, now, now + 120))),
                (b"ZX", jdump(dr("DR-X", "ZX", "CURTAIL", 5.0, now, now + 12)))])
            cap = 66.0 - 30.0
            # CURTAIL reaches each as a SetChargingProfile; two accept, one rejects.
            for c in (j_acc, j_rej, n_acc, j_exp):
                await c.wait_for("SET")
            await seen.wait(t.outcomes, lambda m: outcomes("J-ACC", "Accepted")
                            and outcomes("N-ACC", "Accepted") and outcomes("J-REJ", "Rejected")
                            and outcomes("J-EXP", "Accepted"))
            assert outcomes("J-REJ", "Rejected")[0]["reason"] == "charger answered Rejected"
            # J-EXP goes away during its short event: the CLEAR at the end finds it gone.
            await j_exp.send("disconnect")
            await j_exp.wait_for("CLOSED")
            assert time.time() < now + 12, "too slow to test expiry: the event already ended"
            # The rejecting one is uncontrollable: its 22 kW stand, the others share the rest.
            def reallocated(cmds: list[dict]) -> bool:
                last = {c["station_id"]: c["target_power_kw"] for c in cmds
                        if c["signal_id"] == "DR-E" and c["action"] == "SET"}
                return last.get("J-ACC", 0) + last.get("N-ACC", 0) == pytest.approx(cap - 22.0)

            await seen.wait(t.commands, reallocated, timeout=15)
            assert not seen.messages[t.compliance_alerts]  # not the grace path: the outcome
            view = await poll(worker, "/zones/ZE", lambda z: any(
                s["last_outcome"] and s["last_outcome"]["status"] == "Rejected"
                for s in z["station_list"]))
            assert view["dr"]["stations_uncontrollable"] == 1
            # The dashboard shows each station's last outcome too.
            await poll(worker, "/dashboard.json", lambda d: any(
                z["zone_id"] == "ZE" and z["outcomes"].get("J-REJ") == "Rejected"
                and z["outcomes"].get("J-ACC") == "Accepted" for z in d["zones"]))
            # Their lowered meter values bring the zone under its cap.
            zone = await poll(worker, "/zones/ZE",
                              lambda z: z["zone_total_power_kw"] <= cap + 0.5, timeout=40)
            assert zone["zone_total_power_kw"] >= 22.0  # J-REJ still draws its 22 kW
            await seen.wait(t.outcomes, lambda m: outcomes("J-EXP", "Expired"), timeout=20)
            # N-ACC (2.0.1) goes away; RESTORE: its CLEAR waits (Offline) for its return.
            await n_acc.send("disconnect")
            await n_acc.wait_for("CLOSED")
            for _ in range(100):
                if "N-ACC" not in gateway.connections:
                    break
                await asyncio.sleep(0.05)
            await produce(b, t.demand_response, [(b"ZE", jdump(dr(
                "DR-E", "ZE", "RESTORE", 0.0, now, now + 120, received=time.time())))])
            await j_acc.wait_for("CLEAR")
            await j_rej.wait_for("CLEAR")
            await seen.wait(t.outcomes, lambda m: outcomes("N-ACC", "Offline"))
            assert not any(e.startswith("CLEAR") for e in n_acc.events)
            await n_acc.send("reconnect")
            await n_acc.wait_for("CLEAR")
            # Every command the worker sent ends in exactly one final outcome.
            await seen.wait(t.outcomes, lambda m: {c["command_id"] for c in
                                                   seen.messages[t.commands]}
                            <= {o["command_id"] for o in m if o["final"]})
            all_outcomes = list(seen.messages[t.outcomes])
        assert_one_final_each(all_outcomes)
        assert worker.alive(), worker.log_tail()
    finally:
        for c in chargers:
            await c.stop()
        await gateway.stop()
        worker.stop()
