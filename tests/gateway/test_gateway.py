"""The gateway on the real broker, with chargers played by the `ocpp` package's client:
meter values in, every outcome status out, malformed frames, authentication."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections import Counter

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from evgrid.core.allocator import ConnectorLimit
from evgrid.gateway.auth import hash_password
from evgrid.metrics import GATEWAY_FRAMES_REJECTED
from evgrid.profiles import CONNECTOR, set_profile_payloads
from evgrid.timeutil import from_epoch, iso
from evgrid.topics import ensure_topics
from tests.gateway.commands import command
from tests.gateway.conftest import start_gateway, url
from tests.gateway.pycharger import Session
from tests.integration.harness import Collector, jdump, produce

pytestmark = pytest.mark.integration


def finals_by_command(outcomes: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for o in outcomes:
        out.setdefault(o["command_id"], []).append(o["status"])
    return out


def assert_one_final_each(outcomes: list[dict]) -> None:
    """Exactly one final outcome per command, at most one interim Offline before it."""
    for command_id, statuses in finals_by_command(outcomes).items():
        finals = [s for s in statuses if s != "Offline"]
        assert len(finals) == 1, (command_id, statuses)
        assert statuses.count("Offline") <= 1 and statuses[-1] != "Offline", statuses


async def test_meter_values_of_both_versions_and_connections_reach_kafka(gateway) -> None:
    t = gateway.settings.topics
    async with Collector(gateway.settings.bootstrap_servers, t.meter_values,
                         t.station_status) as seen:
        ts = iso(time.time())
        async with Session(url(gateway), "CP-16") as cp16, \
                Session(url(gateway), "CP-201", "2.0.1") as cp201:
            await cp16.meter(7400, ts)
            await cp201.meter(11000, ts, evse_id=2)
        readings = await seen.wait(t.meter_values, lambda m: len(m) >= 2)
        status = await seen.wait(t.station_status, lambda m: sum(
            not x["connected"] for x in m) >= 2)
    got = {(r["station_id"], r["connector_id"], r["power_kw"], r["_key"]) for r in readings}
    assert got == {("CP-16", 1, 7.4, "CP-16"), ("CP-201", 2, 11.0, "CP-201")}
    assert all(r["event_ts"] == ts.replace("Z", "Z") for r in readings)
    events = Counter((s["station_id"], s["event"]) for s in status)
    for sid in ("CP-16", "CP-201"):
        assert events[(sid, "connected")] == 1 and events[(sid, "boot")] == 1
        assert events[(sid, "disconnected")] == 1


async def test_every_outcome_status_and_exactly_one_final_per_command(
        gateway_settings) -> None:
    settings = gateway_settings.model_copy(update={"gateway_response_timeout_s": 1.0})
    await ensure_topics(settings)
    gw = await start_gateway(settings)
    t = settings.topics
    bootstrap = settings.bootstrap_servers
    try:
        async with Collector(bootstrap, t.outcomes) as seen:
            async def send(*cmds: dict) -> None:
                await produce(bootstrap, t.commands,
                              [(c["station_id"].encode(), jdump(c)) for c in cmds])

            async def outcome_of(command_id: str, status: str) -> dict:
                msgs = await seen.wait(t.outcomes, lambda m: any(
                    o["command_id"] == command_id and o["status"] == status for o in m))
                return next(o for o in msgs if o["command_id"] == command_id
                            and o["status"] == status)

            multi = command("MUL", "c-multi")  # per-connector profiles: two calls, one outcome
            multi["ocpp"] = set_profile_payloads(
                profile_id=7, stack_level=1, mode=CONNECTOR, station_limit_kw=0.0,
                connectors=[ConnectorLimit(1, "CCS", 50.0, None),
                            ConnectorLimit(2, "Type2", 11.0, 16.0)],
                valid_from=from_epoch(time.time()), valid_to=from_epoch(time.time() + 600))
            async with Session(url(gw), "MUL") as mul, \
                    Session(url(gw), "ACC") as acc, \
                    Session(url(gw), "REJ", "2.0.1", answer="Rejected"), \
                    Session(url(gw), "NOS", answer="NotSupported"), \
                    Session(url(gw), "ERR", answer="CallError"), \
                    Session(url(gw), "SIL", answer="Silent"):
                await send(command("ACC", "c-acc"), command("REJ", "c-rej"),
                           command("NOS", "c-nos"), command("ERR", "c-err"),
                           command("SIL", "c-sil"), command("ACC", "c-acc"),  # a duplicate
                           multi)
                await outcome_of("c-acc", "Accepted")
                rej = await outcome_of("c-rej", "Rejected")
                assert rej["reason"] == "NoCapacity: site limit lower"
                await outcome_of("c-nos", "NotSupported")
                err = await outcome_of("c-err", "CallError")
                assert err["reason"].startswith("InternalError")
                sil = await outcome_of("c-sil", "Timeout")
                assert sil["attempt"] == 2  # one retry
                assert [a for a, _ in acc.received] == ["SetChargingProfile"]  # dup not sent
                await outcome_of("c-multi", "Accepted")
                assert [(p["charging_schedule"]["charging_rate_unit"],
                         float(p["charging_schedule"]["charging_schedule_period"][0]["limit"]))
                        for _, p in mul.received] == [("W", 50000.0), ("A", 16.0)]
            # Offline: two commands while away -> the older Superseded, the newer delivered
            # after the next boot; a third, short-lived one for another charger Expires.
            now = time.time()
            await send(command("ACC", "c-old", at=now), command("ACC", "c-new", at=now + 1),
                       command("GONE", "c-exp", valid_s=1.5))
            await outcome_of("c-old", "Superseded")
            await outcome_of("c-exp", "Expired")
            assert (await outcome_of("c-new", "Offline"))["final"] is False
            async with Session(url(gw), "ACC") as back:
                await outcome_of("c-new", "Accepted")
                assert [float(p["charging_schedule"]["charging_schedule_period"][0]["limit"])
                        for _, p in back.received] == [11000.0]
            outcomes = seen.messages[t.outcomes]
    finally:
        await gw.stop()
    assert_one_final_each(outcomes)
    assert {o["status"] for o in outcomes} == {
        "Accepted", "Rejected", "NotSupported", "CallError", "Timeout", "Offline",
        "Superseded", "Expired"}
    assert all(o["_key"] == o["station_id"] for o in outcomes)


def rejected(version: str, reason: str) -> float:
    return GATEWAY_FRAMES_REJECTED.labels(version, reason)._value.get()


async def test_malformed_frames_get_call_errors_and_the_gateway_keeps_serving(gateway) -> None:
    before = {r: rejected("1.6", r) for r in ("FormatViolation", "ProtocolError",
                                              "NotImplemented", "frame_too_large")}
    async with connect(f"{url(gateway)}/BAD", subprotocols=["ocpp1.6"]) as ws, \
            connect(f"{url(gateway)}/BAD2", subprotocols=["ocpp2.0.1"]) as ws201:

        async def reply(sock, frame: str) -> list:
            await sock.send(frame)
            return json.loads(await asyncio.wait_for(sock.recv(), 5))

        assert (await reply(ws, "not json{"))[:3] == [4, "-1", "FormationViolation"]
        assert (await reply(ws, '[7, "u1", "Heartbeat", {}]'))[:3] == [4, "u1", "ProtocolError"]
        assert (await reply(ws201, '[7, "u1", "Heartbeat", {}]'))[:3] == [
            4, "u1", "MessageTypeNotSupported"]
        bad = await reply(ws, '[2, "u2", "BootNotification", {"chargePointVendor": 5}]')
        assert bad[:3] == [4, "u2", "TypeConstraintViolation"]
        assert (await reply(ws, '[2, "u3", "MakeCoffee", {}]'))[:3] == [4, "u3", "NotSupported"]
        assert (await reply(ws, '[2, "u4", "Heartbeat", {}]'))[:2] == [3, "u4"]  # still up
        await ws.send("[" + " " * 1_000_000 + "]")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        # The other charger is still served.
        assert (await reply(ws201, '[2, "u5", "Heartbeat", {}]'))[:2] == [3, "u5"]
    assert rejected("1.6", "FormatViolation") == before["FormatViolation"] + 1
    assert rejected("1.6", "ProtocolError") >= before["ProtocolError"] + 1
    for _ in range(50):
        if rejected("1.6", "frame_too_large") > before["frame_too_large"]:
            break
        await asyncio.sleep(0.05)
    assert rejected("1.6", "frame_too_large") == before["frame_too_large"] + 1
    # The counters, as Prometheus scrapes them from the charger port.
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{gateway.port}/metrics") as resp:
        text = await resp.text()
    assert 'evgrid_gateway_frames_rejected_total{reason="FormatViolation",version="1.6"}' in text


async def test_basic_auth_tls_and_allow_list(gateway_settings, tmp_path) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text(f"CP-A:{hash_password('s3cret-A')}\nCP-X:{hash_password('x')}\n")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    settings = gateway_settings.model_copy(update={
        "gateway_security_profile": 2, "gateway_passwords_file": passwords,
        "gateway_tls_certfile": cert, "gateway_tls_keyfile": key,
        "gateway_allowed_ids": "CP-A,CP-B"})
    await ensure_topics(settings)
    gw = await start_gateway(settings)
    import ssl

    client_tls = ssl.create_default_context(cafile=str(cert))

    def basic(user: str, password: str) -> dict:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"additional_headers": {"Authorization": f"Basic {token}"}, "ssl": client_tls}

    try:
        async with Session(url(gw, "wss"), "CP-A", **basic("CP-A", "s3cret-A")) as cp:
            await cp.meter(1000, iso(time.time()))  # in, over TLS, authenticated
        for sid, creds, status in [("CP-A", basic("CP-A", "wrong"), 401),
                                   ("CP-A", {"ssl": client_tls}, 401),
                                   ("CP-X", basic("CP-X", "x"), 403)]:
            with pytest.raises(InvalidStatus) as refused:
                async with Session(url(gw, "wss"), sid, **creds):
                    pass
            assert refused.value.response.status_code == status, sid
        with pytest.raises((InvalidHandshake, ConnectionClosed, OSError, TimeoutError)):
            async with Session(url(gw, "ws"), "CP-A", open_timeout=3):  # plain ws: no
                pass
    finally:
        await gw.stop()
