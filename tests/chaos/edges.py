"""The edges through a broker outage, for the broker-outage chaos test: the OCPP gateway (in
the test's loop) with a connected charger, and `evgrid openadr` (a process) against a real
openleadr VTN. They use topics of their own, so they share only the broker with the worker.

The gateway must keep its charger connected, deliver the command queued in Kafka just before
the outage and publish its outcome and the meter values it took meanwhile once Kafka is back.
The VEN must keep polling the VTN and publish the event it received during the outage once
Kafka is back. Nothing lost, nothing duplicated, no crash."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from evgrid.broker.local import free_port
from evgrid.openadr.demo_vtn import make_cert
from evgrid.settings import GatewaySettings, VenSettings
from evgrid.timeutil import iso
from evgrid.topics import ensure_topics
from tests.chaos.report import ChaosRow
from tests.gateway.commands import command
from tests.gateway.conftest import start_gateway, url
from tests.gateway.pycharger import Session
from tests.integration.harness import Collector, isolated_settings, jdump, produce
from tests.openadr.test_ven_e2e import simple
from tests.openadr.vtn import Vtn

VEN = "evgrid-outage-ven"
READINGS = 6  # one every 10 s while the broker is away
READING_EVERY_S = 10.0
#: The commands outlive the longest outage (`make chaos-long`): this is not about expiry.
VALID_S = 3600.0


class Edges:
    def __init__(self, bootstrap: str, prefix: str, tmp_path: Path) -> None:
        self.b = bootstrap
        self.tmp_path = tmp_path
        self.settings = isolated_settings(bootstrap, prefix, tmp_path / "data",
                                          cls=GatewaySettings, gateway_port=0,
                                          gateway_response_timeout_s=5.0)
        self.t = self.settings.topics
        self.sent_ts: list[str] = []
        self.ven_log = tmp_path / "ven.log"
        self.stack = contextlib.AsyncExitStack()
        self.polls_at_kill = 0
        self.went = 0.0

    def log(self) -> str:
        return self.ven_log.read_text(errors="replace")

    async def start(self) -> None:
        """VTN, VEN, gateway and charger up; one command delivered and its outcome out."""
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        vtn_cert = make_cert(self.tmp_path, "vtn")
        ven_cert = make_cert(self.tmp_path, "ven")
        targets = self.tmp_path / "targets.json"
        targets.write_text(json.dumps({"ven_id": {"ven-1": ["Z1"]}}))
        self.vtn = Vtn(port=free_port(), cert=vtn_cert, ven_name=VEN,
                       ven_fingerprint=ven_cert.fingerprint)
        self.server = self.vtn.build()
        ven_settings = self.settings.derive(VenSettings, **dict(
            openadr_vtn_url=self.vtn.url, openadr_ven_name=VEN, openadr_cert=ven_cert.cert,
            openadr_key=ven_cert.key, openadr_vtn_fingerprint=vtn_cert.fingerprint,
            openadr_targets_file=targets, openadr_poll_interval_s=1.0,
            openadr_retry_max_s=2.0, openadr_web_port=free_port(), log_level="info"))
        await ensure_topics(self.settings)
        await self.vtn.start()
        self.stack.push_async_callback(self._stop_vtn)
        with self.ven_log.open("wb") as out:
            self.ven = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "evgrid", "openadr",
                env={**os.environ, **ven_settings.to_env()}, stdout=out, stderr=out)
        self.stack.push_async_callback(self._stop_ven)
        self.gateway = await start_gateway(self.settings)
        self.stack.push_async_callback(self.gateway.stop)
        self.cp = await self.stack.enter_async_context(Session(url(self.gateway), "CP-1"))
        self.seen = await self.stack.enter_async_context(
            Collector(self.b, self.t.outcomes, self.t.meter_values, self.t.demand_response))
        await asyncio.wait_for(self.vtn.registered.wait(), 30)
        await produce(self.b, self.t.commands, [(b"CP-1", jdump(command(
            "CP-1", "c-before", valid_s=VALID_S)))])
        await self.seen.wait(self.t.outcomes, lambda o: any(
            x["command_id"] == "c-before" for x in o), timeout=30)

    async def before_outage(self) -> None:
        """A command queued in Kafka right before the broker goes."""
        await produce(self.b, self.t.commands, [(b"CP-1", jdump(command(
            "CP-1", "c-queued", kw=9.0, valid_s=VALID_S)))])

    def gone(self) -> None:
        """The broker is gone: the VTN publishes an event."""
        self.went = time.monotonic()
        self.polls_at_kill = self.vtn.polls
        self.server.add_event(self.vtn.ven_id, "SIMPLE", "level",
                              simple(2, datetime.now(UTC), minutes=30), event_id="e-out")

    async def during(self) -> None:
        """Called about every second while the broker is away."""
        assert self.ven.returncode is None, self.log()
        due = int((time.monotonic() - self.went) // READING_EVERY_S) + 1
        if len(self.sent_ts) < min(READINGS, due):
            self.sent_ts.append(iso(time.time()))
            await self.cp.meter(7000 + 100 * len(self.sent_ts), self.sent_ts[-1])

    async def after_return(self, down_s: float) -> ChaosRow:
        assert len(self.sent_ts) == READINGS
        assert self.vtn.polls >= self.polls_at_kill + down_s / 2, "the VEN stopped polling"
        assert "e-out" in self.vtn.opts, "the VEN did not answer the VTN's event"
        back = time.monotonic()
        t, seen = self.t, self.seen
        signals = await seen.wait(t.demand_response, lambda m: any(
            x["signal_id"] == "oadr:e-out" for x in m), timeout=30)
        signal_late = time.monotonic() - back
        readings = await seen.wait(t.meter_values, lambda m: {
            x["event_ts"] for x in m} >= set(self.sent_ts), timeout=30)
        outcomes = await seen.wait(t.outcomes, lambda o: any(
            x["command_id"] == "c-queued" for x in o), timeout=30)
        queued = [x["status"] for x in outcomes if x["command_id"] == "c-queued"]
        assert queued == ["Accepted"], outcomes
        # The charger stayed connected: a command after the return reaches the same session.
        await produce(self.b, t.commands, [(b"CP-1", jdump(command(
            "CP-1", "c-after", kw=8.0, valid_s=VALID_S)))])
        outcomes = await seen.wait(t.outcomes, lambda o: any(
            x["command_id"] == "c-after" for x in o), timeout=30)
        assert [a for a, _ in self.cp.received].count("SetChargingProfile") == 3
        assert self.ven.returncode is None, self.log()
        finals = sorted(x["command_id"] for x in outcomes)
        assert finals == ["c-after", "c-before", "c-queued"], finals
        mine = [x for x in readings if x["event_ts"] in self.sent_ts]
        assert len({x["event_ts"] for x in mine}) == READINGS
        assert len([x for x in signals if x["signal_id"] == "oadr:e-out"]) == 1
        assert "Crashed reason" not in self.log() and "Traceback" not in self.log(), self.log()
        return ChaosRow(
            "gateway and VEN through a broker outage",
            f"broker kill -9, {down_s:.0f}s down; the VTN's event on Kafka "
            f"{signal_late:.1f}s after the return; charger connected throughout",
            len(finals) + READINGS + 1, len(finals) + len({x["event_ts"] for x in mine}) + 1,
            len(mine) - READINGS, 0)

    async def stop(self) -> None:
        await self.stack.aclose()

    async def _stop_ven(self) -> None:
        if self.ven.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.ven.terminate()
            await asyncio.wait_for(self.ven.wait(), 20)

    async def _stop_vtn(self) -> None:
        with contextlib.suppress(Exception):
            await self.vtn.stop()
        self.vtn.close()
