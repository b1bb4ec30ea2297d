"""Reliability: the edges through a broker outage (kill -9, 60 s down).

The OCPP gateway (in the test's loop) keeps its chargers connected, delivers the command that
was queued in Kafka just before the outage and publishes its outcome and the meter values it
took meanwhile once Kafka is back. The OpenADR VEN (`evgrid openadr`, a process) keeps polling
a real openleadr VTN and publishes the event it received during the outage once Kafka is back.
Nothing lost, nothing duplicated, no crash."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evgrid.broker.local import LocalKafka, free_port
from evgrid.openadr.demo_vtn import make_cert
from evgrid.timeutil import iso
from evgrid.topics import ensure_topics
from tests.chaos.report import ChaosRow, record
from tests.gateway.commands import command
from tests.gateway.conftest import start_gateway, url
from tests.gateway.pycharger import Session
from tests.integration.harness import Collector, isolated_settings, jdump, produce
from tests.openadr.test_ven_e2e import simple
from tests.openadr.vtn import Vtn

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

DOWN_S = 60.0
VEN = "evgrid-outage-ven"
READINGS = 6  # one every 10 s while the broker is away


def log_of(path: Path) -> str:
    return path.read_text(errors="replace")


async def test_gateway_and_ven_ride_out_a_broker_outage(unique_prefix, tmp_path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "kafka", port=0)
    await asyncio.to_thread(broker.start)
    b = broker.bootstrap
    vtn_cert, ven_cert = make_cert(tmp_path, "vtn"), make_cert(tmp_path, "ven")
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"ven_id": {"ven-1": ["Z1"]}}))
    settings = isolated_settings(b, unique_prefix, tmp_path / "data", gateway_port=0,
                                 gateway_response_timeout_s=5.0)
    vtn = Vtn(port=free_port(), cert=vtn_cert, ven_name=VEN,
              ven_fingerprint=ven_cert.fingerprint)
    server = vtn.build()
    ven_settings = settings.model_copy(update=dict(
        openadr_vtn_url=vtn.url, openadr_ven_name=VEN, openadr_cert=ven_cert.cert,
        openadr_key=ven_cert.key, openadr_vtn_fingerprint=vtn_cert.fingerprint,
        openadr_targets_file=targets, openadr_poll_interval_s=1.0, openadr_retry_max_s=2.0,
        openadr_web_port=free_port(), log_level="info"))
    t = settings.topics
    await ensure_topics(settings)
    await vtn.start()
    ven_log = tmp_path / "ven.log"
    with ven_log.open("wb") as out:
        ven = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "evgrid", "openadr", env={**os.environ, **ven_settings.to_env()},
            stdout=out, stderr=out)
    gateway = await start_gateway(settings)
    try:
        await asyncio.wait_for(vtn.registered.wait(), 30)
        async with Session(url(gateway), "CP-1") as cp, \
                Collector(b, t.outcomes, t.meter_values, t.demand_response) as seen:
            await produce(b, t.commands, [(b"CP-1", jdump(command("CP-1", "c-before")))])
            await seen.wait(t.outcomes, lambda o: any(
                x["command_id"] == "c-before" for x in o), timeout=30)
            # Queued in Kafka, then the broker is gone.
            await produce(b, t.commands, [(b"CP-1", jdump(command("CP-1", "c-queued", kw=9.0)))])
            went = time.monotonic()
            await asyncio.to_thread(broker.kill)
            polls = vtn.polls
            sent_ts = []
            server.add_event(vtn.ven_id, "SIMPLE", "level", simple(2, datetime.now(UTC)),
                             event_id="e-out")
            while time.monotonic() - went < DOWN_S:
                if len(sent_ts) < READINGS:
                    sent_ts.append(iso(time.time()))
                    await cp.meter(7000 + 100 * len(sent_ts), sent_ts[-1])
                assert ven.returncode is None, log_of(ven_log)
                await asyncio.sleep(10.0 if len(sent_ts) < READINGS else 1.0)
            assert vtn.polls >= polls + DOWN_S / 2, "the VEN stopped polling"
            assert "e-out" in vtn.opts, "the VEN did not answer the VTN's event"
            await asyncio.to_thread(broker.start)
            back = time.monotonic()

            signals = await seen.wait(t.demand_response, lambda m: any(
                x["signal_id"] == "oadr:e-out" for x in m), timeout=30)
            signal_late = time.monotonic() - back
            readings = await seen.wait(t.meter_values, lambda m: {
                x["event_ts"] for x in m} >= set(sent_ts), timeout=30)
            outcomes = await seen.wait(t.outcomes, lambda o: any(
                x["command_id"] == "c-queued" for x in o), timeout=30)
            assert [x["status"] for x in outcomes if x["command_id"] == "c-queued"] == [
                "Accepted"]
            assert ("SetChargingProfile" in [a for a, _ in cp.received])
            # The charger stayed connected: a command after the return reaches it as well.
            await produce(b, t.commands, [(b"CP-1", jdump(command("CP-1", "c-after", kw=8.0)))])
            outcomes = await seen.wait(t.outcomes, lambda o: any(
                x["command_id"] == "c-after" for x in o), timeout=30)
            assert ven.returncode is None, log_of(ven_log)
            finals = [x["command_id"] for x in outcomes]
            assert sorted(finals) == ["c-after", "c-before", "c-queued"], finals
            mine = [x for x in readings if x["event_ts"] in sent_ts]
            assert len({x["event_ts"] for x in mine}) == READINGS
            assert len([x for x in signals if x["signal_id"] == "oadr:e-out"]) == 1
            assert "Crashed reason" not in log_of(ven_log)
            assert "Traceback" not in log_of(ven_log), log_of(ven_log)
            record(ChaosRow(
                "gateway and VEN through a broker outage",
                f"broker kill -9, {DOWN_S:.0f}s down; the VTN's event on Kafka "
                f"{signal_late:.1f}s after the return; charger connected throughout",
                3 + READINGS + 1, len(finals) + len({x["event_ts"] for x in mine}) + 1,
                len(mine) - READINGS, 0))
    finally:
        if ven.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                ven.terminate()
            await asyncio.wait_for(ven.wait(), 20)
        await gateway.stop()
        with contextlib.suppress(Exception):
            await vtn.stop()
        vtn.close()
        broker.cleanup()
