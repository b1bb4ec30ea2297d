"""`evgrid gateway`'s process: the WebSocket endpoint and its edges to Kafka.

Chargers connect to `ws://HOST:PORT/{charge_point_id}` with subprotocol `ocpp1.6` or
`ocpp2.0.1`. Meter values go to `ocpp.meter_values`, connections to `ocpp.station_status`;
commands come from the commands topic and every command's outcome goes to
`ocpp.commands.outcomes`. Decisions about delivery live in the pure `Ledger`; this module
only decodes, calls it and carries out its effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import ssl
from collections import deque
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from evgrid import codec
from evgrid.gateway.auth import Gatekeeper, load_passwords
from evgrid.gateway.charge_point import CENTRAL_SYSTEMS
from evgrid.gateway.feeds import Feeds
from evgrid.gateway.ledger import Command, Effect, Ledger, Outcome, Send
from evgrid.logs import broker_connected
from evgrid.metrics import (
    GATEWAY_COMMANDS,
    GATEWAY_CONNECTIONS,
    GATEWAY_CONNECTIONS_REFUSED,
    GATEWAY_FRAMES_REJECTED,
    GATEWAY_READINGS,
)
from evgrid.models.gateway import CommandOutcome, StationStatus
from evgrid.settings import GatewaySettings
from evgrid.timeutil import parse_ts

log = logging.getLogger(__name__)

#: A message Kafka refused is offered again after this long.
RESEND_S = 1.0

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
_REFUSALS = {
    "bad_charge_point_id": HTTPStatus.NOT_FOUND,
    "not_allowed": HTTPStatus.FORBIDDEN,
    "no_credentials": HTTPStatus.UNAUTHORIZED,
    "bad_credentials": HTTPStatus.UNAUTHORIZED,
    "no_ocpp_subprotocol": HTTPStatus.BAD_REQUEST,
}


def _now() -> datetime:
    return datetime.now(UTC)


def raise_fd_limit() -> int:
    """Thousands of WebSockets need thousands of descriptors; the soft limit is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def command_from(raw: dict) -> Command:
    """The fields the ledger needs; KeyError/ValueError on a command it cannot act on."""
    return Command(
        command_id=str(raw["command_id"]), station_id=str(raw["station_id"]),
        action=str(raw["action"]), signal_id=raw.get("signal_id"),
        command_ts=parse_ts(raw["command_ts"]), valid_to=parse_ts(raw["dr_end_ts"]), raw=raw,
    )


class Gateway:
    """One gateway instance: connections, the ledger, and the Kafka feeds."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.instance_id = settings.gateway_instance_id
        self.heartbeat_interval_s = settings.gateway_heartbeat_interval_s
        self.ledger = Ledger(self.instance_id, settings.gateway_all_instances)
        passwords = (load_passwords(settings.gateway_passwords_file)
                     if settings.gateway_security_profile >= 1
                     and settings.gateway_passwords_file else None)
        self.gatekeeper = Gatekeeper(settings.gateway_allowed, passwords)
        self.connections: dict[str, Any] = {}
        self.connector_types: dict[str, str] = {}
        self._delivering: dict[str, asyncio.Task] = {}
        self._outbox: deque[tuple[str, bytes, bytes]] = deque()
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._server: Server | None = None
        self._producer: AIOKafkaProducer | None = None
        self.feeds = Feeds(settings, self)
        self.port = settings.gateway_port

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self._producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, linger_ms=5,
                                          acks=1, **s.kafka_client_kwargs())
        await self._producer.start()
        self._tasks.append(asyncio.create_task(self._pump(), name="gateway-outbox"))
        await self.feeds.start()
        self._tasks.append(asyncio.create_task(self._expire_loop(), name="gateway-expiry"))
        self._server = await serve(
            self._connection, s.gateway_host, s.gateway_port, subprotocols=list(SUBPROTOCOLS),
            process_request=self._check_request, ssl=self._tls(),
            ping_interval=s.gateway_ping_interval_s or None,
            ping_timeout=s.gateway_ping_interval_s or None,
            max_size=s.gateway_max_frame_bytes, compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway %s listening on %s://%s:%d/{charge_point_id}", self.instance_id,
                 "wss" if s.gateway_security_profile == 2 else "ws", s.gateway_host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in [*self._delivering.values(), *self._tasks]:
            task.cancel()
        for task in [*self._delivering.values(), *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.feeds.stop()
        if self._producer is not None:
            await self._drain_outbox()
            await self._producer.stop()

    def _tls(self) -> ssl.SSLContext | None:
        s = self.settings
        if s.gateway_security_profile != 2:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(s.gateway_tls_certfile), str(s.gateway_tls_keyfile))
        return context

    # --- connections ----------------------------------------------------------------------
    async def _check_request(self, connection: ServerConnection, request: Request
                             ) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._plain_http(connection, request.path.split("?", 1)[0])
        station_id = unquote(request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if not {p.strip() for p in offered.split(",")} & set(SUBPROTOCOLS):
            reason: str | None = "no_ocpp_subprotocol"
        elif self.gatekeeper.passwords is None:
            reason = self.gatekeeper.refuse(station_id, None)
        else:  # scrypt is deliberately slow: off the event loop
            reason = await asyncio.to_thread(
                self.gatekeeper.refuse, station_id, request.headers.get("Authorization"))
        if reason is None:
            return None
        GATEWAY_CONNECTIONS_REFUSED.labels(reason).inc()
        log.warning("refused %r: %s", station_id, reason)
        return connection.respond(_REFUSALS[reason], f"{reason}\n")

    def _plain_http(self, connection: ServerConnection, path: str) -> Response:
        """Plain GETs on the charger port: `/metrics` (Prometheus) and `/health`."""
        if path == "/metrics":
            return connection.respond(HTTPStatus.OK, generate_latest().decode())
        if path == "/health":
            return connection.respond(HTTPStatus.OK, codec.dumps({
                "gateway_id": self.instance_id, "connections": len(self.connections),
                "ready": self.feeds.ready.is_set(),
                "broker_connected": broker_connected()}).decode())
        return connection.respond(HTTPStatus.UPGRADE_REQUIRED,
                                  "OCPP chargers connect with a WebSocket to /{charge_point_id}"
                                  "; plain GETs: /metrics, /health\n")

    async def _connection(self, ws: ServerConnection) -> None:
        station_id = unquote(ws.request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        cp = CENTRAL_SYSTEMS[ws.subprotocol](station_id, ws, self,
                                             self.settings.gateway_response_timeout_s)
        old = self.connections.get(station_id)
        if old is not None:  # reconnected before we noticed the old socket die
            self._lost(station_id)
            self._tasks.append(asyncio.create_task(
                old._connection.close(1000, "replaced by a new connection")))
        self.connections[station_id] = cp
        GATEWAY_CONNECTIONS.labels(cp.version).inc()
        self.station_event(station_id, "connected")
        try:
            await cp.start()
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                GATEWAY_FRAMES_REJECTED.labels(cp.version, "frame_too_large").inc()
        finally:
            GATEWAY_CONNECTIONS.labels(cp.version).dec()
            if self.connections.get(station_id) is cp:
                self._lost(station_id)
                self.station_event(station_id, "disconnected")

    def _lost(self, station_id: str) -> None:
        self.connections.pop(station_id, None)
        task = self._delivering.pop(station_id, None)
        if task is not None:
            task.cancel()
        self._apply(self.ledger.on_disconnect(station_id))

    # --- Hub: what connections call -------------------------------------------------------
    def forward(self, station_id: str, messages: list[dict]) -> None:
        topic = self.settings.topics.meter_values
        key = station_id.encode()
        version = getattr(self.connections.get(station_id), "version", "?")
        for message in messages:
            self._publish(topic, key, codec.dumps(message))
        GATEWAY_READINGS.labels(version).inc(len(messages))

    def station_event(self, station_id: str, event: str, **fields: Any) -> None:
        cp = self.connections.get(station_id)
        connected = event != "disconnected"
        status = StationStatus(
            station_id=station_id, gateway_id=self.instance_id, event=event,
            connected=connected, ocpp_version=getattr(cp, "version", None), ts=_now(), **fields)
        self.ledger.on_holder(station_id, self.instance_id, connected)
        self._publish(self.settings.topics.station_status, station_id.encode(),
                      codec.dumps(status))

    def ready(self, station_id: str) -> None:
        self._apply(self.ledger.on_boot(station_id))

    def connector_type(self, station_id: str, connector_id: int) -> str:
        return self.connector_types.get(station_id, self.settings.gateway_connector_type)

    # --- commands and outcomes ------------------------------------------------------------
    def on_command(self, raw: dict) -> None:
        self._apply(self.ledger.on_command(command_from(raw), _now()))

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._kick(effect.station_id)
            else:
                self._publish_outcome(effect)

    def _kick(self, station_id: str) -> None:
        task = self._delivering.get(station_id)
        if task is None or task.done():
            self._delivering[station_id] = asyncio.create_task(self._deliver(station_id))

    async def _deliver(self, station_id: str) -> None:
        """Send the station's commands one at a time, newest pending first, until none is
        left; one retry on timeout."""
        while True:
            cmd, effects = self.ledger.take(station_id, _now())
            self._apply(effects)
            cp = self.connections.get(station_id)
            if cmd is None or cp is None:
                return
            try:
                while True:
                    status, reason = await self._send_all(cp, cmd)
                    if status != "Timeout" or not self.ledger.retry(station_id):
                        break
            except ConnectionClosed:
                return  # the connection's end hands the command back to the ledger
            self._apply(self.ledger.delivered(station_id, status, reason))

    async def _send_all(self, cp: Any, cmd: Command) -> tuple[str, str | None]:
        """Every payload for the charger's version, in order; the first that is not
        Accepted decides the outcome."""
        calls = (cmd.raw.get("ocpp") or {}).get(cp.version)
        if not calls:
            return "NotSupported", f"command carries no OCPP {cp.version} payload"
        reason = None
        for call in calls:
            try:
                status, reason = await cp.send_command(call["action"], call["payload"])
            except TimeoutError:
                return "Timeout", (f"no answer to {call['action']} within "
                                   f"{self.settings.gateway_response_timeout_s:g}s")
            if status != "Accepted":
                return status, reason
        return "Accepted", reason

    def _publish_outcome(self, outcome: Outcome) -> None:
        cmd = outcome.command
        message = CommandOutcome(
            command_id=cmd.command_id, station_id=cmd.station_id,
            action=cmd.action if cmd.action in ("SET", "CLEAR") else "SET",
            status=outcome.status, reason=outcome.reason, attempt=cmd.attempt,
            final=outcome.final, signal_id=cmd.signal_id, gateway_id=self.instance_id,
            command_ts=cmd.command_ts, ts=_now())
        GATEWAY_COMMANDS.labels(outcome.status).inc()
        self._publish(self.settings.topics.outcomes, cmd.station_id.encode(),
                      codec.dumps(message))

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._apply(self.ledger.expire(_now()))

    # --- the outbox: handlers are synchronous, Kafka is not -------------------------------
    # Every message waits here until Kafka acknowledges it: a send refused, or an ack that
    # fails (a batch expired while the broker was away), puts it back and it is re-sent,
    # so a broker outage of any length loses neither meter values nor outcomes.
    def _publish(self, topic: str, key: bytes, value: bytes) -> None:
        self._outbox.append((topic, key, value))
        self._outbox_ready.set()

    async def _pump(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            if not await self._drain_outbox():
                await asyncio.sleep(RESEND_S)  # the broker is away: try again shortly
                self._outbox_ready.set()

    async def _drain_outbox(self) -> bool:
        """Hand every waiting message to the producer; False when it refused one."""
        assert self._producer is not None
        while self._outbox:
            message = self._outbox[0]
            try:
                fut = await self._producer.send(message[0], value=message[2], key=message[1])
            except KafkaError as exc:  # no metadata, no room: the broker is away
                log.debug("gateway: Kafka refused a message, held: %r", exc)
                return False
            self._outbox.popleft()
            fut.add_done_callback(lambda f, m=message: self._acked(m, f))
        return True

    def _acked(self, message: tuple[str, bytes, bytes], fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self._outbox.appendleft(message)
            self._outbox_ready.set()
