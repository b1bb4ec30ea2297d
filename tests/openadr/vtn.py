"""A real openleadr VTN on 127.0.0.1 for the VEN's tests, with test certificates made here."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from openleadr import OpenADRServer, hooks
from openleadr.messaging import create_message
from openleadr.service import VTNService

from evgrid.openadr.demo_vtn import CertPair


@dataclass
class Vtn:
    """The utility's side: registrations, opts, report values and every message seen."""

    port: int
    cert: CertPair
    ven_name: str
    ven_fingerprint: str
    ven_id: str = "ven-1"
    opts: dict[str, list[str]] = field(default_factory=dict)
    created_event_responses: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, list[tuple[Any, float]]] = field(default_factory=dict)
    polls: int = 0
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    server: OpenADRServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    def build(self) -> OpenADRServer:
        server = OpenADRServer(
            vtn_id="TEST-VTN", cert=str(self.cert.cert), key=str(self.cert.key),
            http_host="127.0.0.1", http_port=self.port, show_fingerprint=False,
            requested_poll_freq=dt.timedelta(seconds=1), ven_lookup=self._ven_lookup)
        server.add_handler("on_create_party_registration", self._register)
        server.add_handler("on_register_report", self._on_register_report)
        hooks.HOOKS["before_handle"].append(self._seen)
        self.server = server
        return server

    async def start(self) -> None:
        assert self.server is not None
        await self.server.run()

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop()

    def close(self) -> None:
        if self._seen in hooks.HOOKS["before_handle"]:
            hooks.HOOKS["before_handle"].remove(self._seen)

    # -- handlers --------------------------------------------------------------------------

    def _ven_lookup(self, ven_id: str) -> dict | None:
        if ven_id != self.ven_id or not self.registered.is_set():
            return None
        return {"ven_id": ven_id, "ven_name": self.ven_name, "registration_id": "reg-1",
                "fingerprint": self.ven_fingerprint}

    def _register(self, registration_info: dict) -> tuple[str, str] | bool:
        if registration_info["ven_name"] != self.ven_name:
            return False
        self.registered.set()
        return self.ven_id, "reg-1"

    def _on_register_report(self, ven_id: str, resource_id: str, measurement: str, unit: str,
                            scale: str, min_sampling_interval: dt.timedelta,
                            max_sampling_interval: dt.timedelta) -> tuple | None:
        if resource_id != "Z1":
            return None
        key = f"{resource_id}.{measurement}"
        return partial(self._on_values, key), dt.timedelta(seconds=1)

    def _on_values(self, key: str, values: list[tuple[Any, float]]) -> None:
        self.reports.setdefault(key, []).extend(values)

    async def _seen(self, message_type: str, payload: dict) -> None:
        if message_type == "oadrPoll":
            self.polls += 1
        elif message_type == "oadrCreatedEvent":
            self.created_event_responses.extend(payload.get("event_responses") or [])
            for response in payload.get("event_responses") or []:
                self.opts.setdefault(response["event_id"], []).append(response["opt_type"])

    # -- bad payloads, for the VEN's rejection tests ---------------------------------------

    def send_unsigned(self) -> None:
        VTNService._create_message = partial(create_message, cert=None, key=None)

    def send_malformed(self) -> None:
        VTNService._create_message = staticmethod(lambda *a, **k: "<oadrPayload>not OpenADR")

    def send_signed(self) -> None:
        VTNService._create_message = partial(
            create_message, cert=self.cert.cert.read_bytes(), key=self.cert.key.read_bytes(),
            passphrase=None)
