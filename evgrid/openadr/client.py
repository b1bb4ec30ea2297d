"""openleadr's VEN client, hardened where evgrid needs it.

openleadr 0.5.36 gives up silently when the VTN is unreachable at start, treats an event that
vanished from the VTN's distribution as still on (its #92), has no place for an optOut's
reason, only logs payloads it rejects, and loads its private key again for every message it
signs. This subclass keeps its message templates, signer settings, schema and report
machinery, and replaces exactly those five behaviours.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import aiohttp
from lxml.etree import XMLSyntaxError
from openleadr import OpenADRClient, errors
from openleadr.messaging import parse_message, validate_xml_schema, validate_xml_signature
from signxml.exceptions import InvalidSignature

from evgrid.openadr.signing import signed_messages
from evgrid.openadr.tracker import OptResponse

log = logging.getLogger("evgrid.openadr")

Distribution = Callable[[list[dict[str, Any]]], Awaitable[list[OptResponse]]]


def classify(exc: Exception) -> str:
    """A low-cardinality reason (metric label) for a VTN payload that was rejected."""
    if isinstance(exc, XMLSyntaxError):
        return "schema_invalid"
    if isinstance(exc, errors.FingerprintMismatch):
        return "fingerprint_mismatch"
    if isinstance(exc, InvalidSignature):
        return "invalid_signature"
    if isinstance(exc, ValueError) and ("ReplayProtect" in str(exc) or "nonce" in str(exc)
                                        or "signed too long" in str(exc)):
        return "replay"
    if isinstance(exc, AttributeError | TypeError | IndexError | KeyError):
        return "unsigned"  # no X509Certificate to extract from the payload
    return "unparseable"


def _ok(payload: dict[str, Any]) -> bool:
    """An OpenADR answer that is not an error. A VTN answers a failed oadrRequestEvent with
    an oadrDistributeEvent that carries an error code and no events: read as a distribution,
    that would cancel every event."""
    code = (payload.get("response") or {}).get("response_code", 200)
    return str(code) == "200"


class _ReportsWithValues(asyncio.Queue):
    """openleadr sends a report even when no value was sampled; a VTN (openleadr's among them)
    may fail on an empty one. No fresh zone load means nothing to say: drop it."""

    async def put(self, report: Any) -> None:
        if report.intervals:
            await super().put(report)


class EvgridClient(OpenADRClient):
    """A VEN that retries, reports its connection state, and hands distributions to evgrid."""

    def __init__(self, *args: Any, on_distribution: Distribution,
                 on_rejected: Callable[[str], None], on_connected: Callable[[bool], None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        signing = self._create_message.keywords  # what openleadr read from the files
        if signing["cert"] and signing["key"] and not signing["disable_signature"]:
            self._create_message = signed_messages(signing["cert"], signing["key"],
                                                   signing["passphrase"])
        self._on_distribution = on_distribution
        self._on_rejected = on_rejected
        self._on_connected = on_connected
        self.last_poll_monotonic: float | None = None
        self.pending_reports = _ReportsWithValues()

    # -- transport -------------------------------------------------------------------------

    async def _ensure_client_session(self) -> None:
        """openleadr builds a TLS context even for http:// and needs a CA file for it; use
        TLS (client certificate, CA file or the system's roots) only for https://."""
        if self.client_session:
            return
        headers = {"content-type": "application/xml"}
        timeout = aiohttp.ClientTimeout(sock_connect=5, sock_read=10)
        connector = None
        if self.vtn_url.startswith("https://"):
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_path and self.key_path:
                context.load_cert_chain(self.cert_path, self.key_path, self.passphrase)
            context.check_hostname = self.check_hostname
            connector = aiohttp.TCPConnector(ssl=context)
        self.client_session = aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=timeout)

    async def _perform_request(self, service: str, message: str) -> tuple[str | None, dict]:
        await self._ensure_client_session()
        url = f"{self.vtn_url}/{service}"
        try:
            async with self.client_session.post(url, data=message) as response:
                content = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._on_connected(False)
            log.debug("VTN request to %s failed: %s", url, exc)
            return None, {}
        self._on_connected(True)
        if status != HTTPStatus.OK:
            log.warning("VTN answered %s to %s: %s", status, service, content[:300])
            return None, {}
        if not content:
            return None, {}
        try:
            tree = validate_xml_schema(content)
            if self.vtn_fingerprint:
                validate_xml_signature(tree, cert_fingerprint=self.vtn_fingerprint)
            message_type, payload = parse_message(content)
        except Exception as exc:  # every way a payload can be bad: counted, never acted on
            reason = classify(exc)
            self._on_rejected(reason)
            log.warning("rejected a VTN payload (%s): %s", reason, exc)
            return None, {}
        code = (payload.get("response") or {}).get("response_code")
        if code is not None and code != 200:
            log.warning("VTN returned OpenADR status %s: %s", code,
                        payload["response"].get("response_description"))
        return message_type, payload

    # -- registration and polling ----------------------------------------------------------

    async def register(self, retry_max_s: float) -> None:
        """Register with the VTN, retrying with backoff until it answers."""
        self.loop = asyncio.get_running_loop()
        delay = 1.0
        while True:
            _, answer = await self.query_registration()
            request_id = ((answer or {}).get("response") or {}).get("request_id")
            if answer:
                await self.create_party_registration(ven_id=self.ven_id, request_id=request_id)
            if self.registration_id:
                log.info("registered with the VTN at %s as venID %s", self.vtn_url, self.ven_id)
                return
            # Once per outage, not once per attempt.
            (log.warning if delay == 1.0 else log.debug)(
                "VTN at %s not available for registration; retrying with backoff up to %.0f s",
                self.vtn_url, retry_max_s)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)

    async def start_session(self, retry_max_s: float) -> None:
        """Register, offer our reports, take the VTN's current events. Also after the VTN
        asked us to re-register: the old report jobs go, the VTN requests reports anew."""
        for request in self.report_requests:
            if request.get("job") is not None:
                request["job"].remove()
        self.report_requests = []
        await self.register(retry_max_s)
        await self.register_reports(self.reports)
        if self.reports and self.report_queue_task is None:
            self.report_queue_task = self.loop.create_task(self._report_queue_worker())
        if not self.scheduler.running:
            self.scheduler.start()
        await self.sync_events()

    async def poll_forever(self, interval_s: float | None, retry_max_s: float) -> None:
        """Poll at our interval (or the VTN's); a lost VTN is retried, never given up on, and
        a VTN message openleadr's handlers choke on is counted, not fatal."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()  # a fixed cadence: handling a poll does not stretch the period
            try:
                await self._poll()
                if self.registration_id is None:  # the VTN cancelled or asked to re-register
                    await self.start_session(retry_max_s)
            except Exception:
                self._on_rejected("handler_error")
                log.exception("a VTN message could not be handled; polling goes on")
            period = interval_s or self.poll_frequency.total_seconds()
            await asyncio.sleep(max(0.05, period - (loop.time() - began)))

    async def poll(self) -> tuple[str | None, dict]:
        message_type, payload = await super().poll()
        if message_type is not None:
            self.last_poll_monotonic = time.monotonic()
        if message_type == "oadrDistributeEvent" and not payload.get("events") \
                and _ok(payload):
            await self._on_event(payload)  # openleadr skips empty distributions
        return message_type, payload

    async def sync_events(self) -> None:
        message_type, payload = await self.request_event()
        if message_type == "oadrDistributeEvent" and _ok(payload):
            await self._on_event(payload)

    async def create_party_reregistration(self, registration_id: str | None = None) -> None:
        """openleadr stops the client when re-registration fails; evgrid retries instead."""
        self.registration_id = None

    async def create_report(self, response_payload: dict[str, Any]) -> None:
        """openleadr 0.5.36 collects the requested r_ids of all report requests of one message
        into one shared list, so every report would carry every other report's values: give
        each request back its own r_ids once openleadr has set them up."""
        await super().create_report(response_payload)
        wanted = {
            request["report_request_id"]: {
                payload["r_id"] for payload in request["report_specifier"]["specifier_payloads"]}
            for request in response_payload.get("report_requests") or []
        }
        for request in self.report_requests:
            if request["report_request_id"] in wanted:
                request["r_ids"] = [r_id for r_id in request["r_ids"]
                                    if r_id in wanted[request["report_request_id"]]]

    # -- events ----------------------------------------------------------------------------

    async def _on_event(self, message: dict[str, Any]) -> None:
        if not _ok(message):
            return  # an error answer, not a distribution: it must not cancel anything
        responses = await self._on_distribution(list(message.get("events") or []))
        await self.send_opt_responses(responses, message.get("request_id"))

    async def send_opt_responses(self, responses: list[OptResponse],
                                 request_id: str | None = None) -> None:
        """oadrCreatedEvent, with the reason for an optOut in its responseDescription."""
        if not responses:
            return
        from openleadr import utils

        request_id = request_id or utils.generate_id()
        message = self._create_message(
            "oadrCreatedEvent",
            response={"response_code": 200, "response_description": "OK",
                      "request_id": request_id},
            event_responses=[{
                "response_code": 200,
                "response_description": r.reason[:250],
                "request_id": request_id,
                "event_id": r.event_id,
                "modification_number": r.modification_number,
                "opt_type": r.opt_type,
            } for r in responses],
            ven_id=self.ven_id,
        )
        await self._perform_request("EiEvent", message)
