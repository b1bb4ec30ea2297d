"""`evgrid openadr`: the VEN process. Edges only: the VTN (via `client`), Kafka, a small web
port for /health and /metrics; every decision is the tracker's."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from evgrid import codec, metrics
from evgrid.logs import broker_connected, install_broker_log
from evgrid.models.outputs import ZoneLoadReport
from evgrid.openadr.mapping import MappingError, TargetMap
from evgrid.openadr.signals import Levels
from evgrid.openadr.tracker import Decision, EventTracker, OptResponse
from evgrid.probes import serve_probes
from evgrid.settings import VenSettings

log = logging.getLogger("evgrid.openadr")

#: A DR signal Kafka did not take is offered again after this long.
RESEND_S = 1.0


class SettingsProblem(SystemExit):
    pass


def check_settings(settings: VenSettings) -> None:
    """Refuse to start with a message that says which variable to set."""
    missing = []
    if not settings.openadr_vtn_url:
        missing.append("EVGRID_OPENADR_VTN_URL (the VTN's OpenADR base URL)")
    if settings.openadr_targets_file is None:
        missing.append("EVGRID_OPENADR_TARGETS_FILE (the target -> zone mapping file)")
    if settings.openadr_signatures:
        for name, what in (("cert", "the VEN's certificate (PEM)"),
                           ("key", "the VEN's private key (PEM)"),
                           ("vtn_fingerprint", "the VTN certificate's fingerprint")):
            if not getattr(settings, f"openadr_{name}"):
                missing.append(f"EVGRID_OPENADR_{name.upper()} ({what})")
    for name in ("cert", "key", "ca_file", "targets_file"):
        path = getattr(settings, f"openadr_{name}")
        if path is not None and not path.is_file():
            missing.append(f"EVGRID_OPENADR_{name.upper()} names {path}, which is not a file")
    if missing:
        raise SettingsProblem(
            "evgrid openadr: settings to fix: " + "; ".join(missing)
            + (". XML signatures are on by default; EVGRID_OPENADR_SIGNATURES=false turns them "
               "off (tests only)." if settings.openadr_signatures else ""))


class ZoneLoads:
    """The newest `grid.zone_load` per zone, for the reports."""

    def __init__(self, stale_s: float) -> None:
        self.stale_s = stale_s
        self.latest: dict[str, tuple[float, ZoneLoadReport]] = {}

    def update(self, report: ZoneLoadReport, now: float) -> None:
        self.latest[report.zone_id] = (now, report)

    def fresh(self, zone_id: str, now: float) -> ZoneLoadReport | None:
        seen = self.latest.get(zone_id)
        if seen is None or now - seen[0] > self.stale_s:
            return None
        return seen[1]


class Ven:
    """One VEN: the VTN client, the tracker, a producer and a consumer."""

    def __init__(self, settings: VenSettings) -> None:
        check_settings(settings)
        self.settings = settings
        assert settings.openadr_targets_file is not None
        self.targets = TargetMap.load(settings.openadr_targets_file)
        self.tracker = EventTracker(
            self.targets,
            Levels(settings.openadr_simple_level1_pct, settings.openadr_simple_level2_pct,
                   settings.openadr_simple_level3_pct),
            settings.openadr_shortfall_optout_kw,
        )
        self.loads = ZoneLoads(settings.openadr_report_stale_s)
        self.connected: bool | None = None
        self.label = settings.openadr_ven_name
        self.client = self._client()
        self.producer: AIOKafkaProducer | None = None
        #: DR signals decided, not yet taken by Kafka (`_send`).
        self._held: deque[dict[str, Any]] = deque()
        self._held_ready = asyncio.Event()
        metrics.OPENADR_CONNECTED.labels(self.label).set(0)
        metrics.OPENADR_LAST_POLL_AGE.labels(self.label).set_function(self._poll_age)

    def _client(self) -> Any:
        from openleadr.objects import SamplingRate

        from evgrid.openadr.client import EvgridClient

        # The VTN may ask for any sampling rate from 1 s up: the zone load is live.
        sampling = SamplingRate(min_period=timedelta(seconds=1), max_period=timedelta(hours=1),
                                on_change=False)
        s = self.settings
        signed = s.openadr_signatures
        client = EvgridClient(
            s.openadr_ven_name, s.openadr_vtn_url,
            cert=str(s.openadr_cert) if signed and s.openadr_cert else None,
            key=str(s.openadr_key) if signed and s.openadr_key else None,
            passphrase=s.openadr_key_passphrase,
            vtn_fingerprint=s.openadr_vtn_fingerprint if signed else None,
            ca_file=str(s.openadr_ca_file) if s.openadr_ca_file else None,
            ven_id=s.openadr_ven_id, disable_signature=not signed, show_fingerprint=False,
            on_distribution=self._on_distribution, on_rejected=self._on_rejected,
            on_connected=self._on_connected,
        )
        for zone_id in self.targets.zones():
            client.add_report(
                callback=lambda z=zone_id: self._usage_w(z), resource_id=zone_id,
                measurement="power_real", unit="W", report_specifier_id="evgrid-usage",
                r_id=f"{zone_id}.power_real", sampling_rate=sampling,
                report_duration=timedelta(hours=1))
            for field in ("online", "manual_override"):
                client.add_report(
                    callback=lambda z=zone_id, f=field: self._status(z, f), resource_id=zone_id,
                    report_name="TELEMETRY_STATUS", report_specifier_id="evgrid-status",
                    r_id=f"{zone_id}.{field}", sampling_rate=sampling,
                    report_duration=timedelta(hours=1))
        return client

    # -- callbacks from the client -----------------------------------------------------------

    def _poll_age(self) -> float:
        last = self.client.last_poll_monotonic
        return float("nan") if last is None else time.monotonic() - last

    def _on_connected(self, up: bool) -> None:
        """Logged once per change, never per poll."""
        if up == self.connected:
            return
        self.connected = up
        metrics.OPENADR_CONNECTED.labels(self.label).set(1 if up else 0)
        if up:
            log.info("VTN %s reachable", self.settings.openadr_vtn_url)
        else:
            log.warning("VTN %s unreachable; events already received run to their end, "
                        "retrying", self.settings.openadr_vtn_url)

    def _on_rejected(self, reason: str) -> None:
        metrics.OPENADR_REJECTED.labels("vtn", reason).inc()

    async def _on_distribution(self, events: list[dict[str, Any]]) -> list[OptResponse]:
        decision = self.tracker.on_distribution(events, time.time())
        await self._publish(decision)
        return decision.responses

    def _usage_w(self, zone_id: str) -> list[tuple[Any, float]]:
        report = self.loads.fresh(zone_id, time.time())
        if report is None:
            return []  # no live figure: say nothing rather than something stale
        return [(report.ts, round(report.zone_total_power_kw * 1000.0, 1))]

    def _status(self, zone_id: str, field: str) -> list[tuple[Any, float]]:
        report = self.loads.fresh(zone_id, time.time())
        if report is None:
            return []
        value = 1.0 if field == "online" else float(report.stations_uncontrollable)
        return [(report.ts, value)]

    # -- Kafka -------------------------------------------------------------------------------

    async def _publish(self, decision: Decision) -> None:
        """The decision's DR signals are held, in order, until Kafka takes them (`_send`):
        while the broker is away the VEN keeps polling and answering the VTN, and what it
        received meanwhile reaches `grid.demand_response` once Kafka is back."""
        self._held.extend(decision.messages)
        if decision.messages:
            self._held_ready.set()
        for response in decision.responses:
            metrics.OPENADR_OPTS.labels(response.opt_type).inc()

    async def _send(self) -> None:
        assert self.producer is not None
        while True:
            await self._held_ready.wait()
            self._held_ready.clear()
            while self._held:
                message = self._held[0]
                try:
                    await self.producer.send_and_wait(
                        self.settings.topics.demand_response, codec.dumps(message),
                        key=message["zone_id"].encode())
                except KafkaError as exc:  # the broker is away: held, offered again
                    log.debug("%s for zone %s held: %r", message["signal_id"],
                              message["zone_id"], exc)
                    await asyncio.sleep(RESEND_S)
                    continue
                self._held.popleft()
                metrics.OPENADR_PUBLISHED.labels(message["signal_type"]).inc()
                log.info("published %s %s for zone %s", message["signal_type"],
                         message["signal_id"], message["zone_id"])

    async def _consume(self) -> None:
        """`grid.zone_load` feeds the reports; `grid.dr_status` the shortfall optOut."""
        t = self.settings.topics
        consumer = AIOKafkaConsumer(
            t.zone_load, t.dr_status, bootstrap_servers=self.settings.bootstrap_servers,
            auto_offset_reset="latest", enable_auto_commit=False,
            **self.settings.kafka_client_kwargs())
        await consumer.start()
        try:
            async for record in consumer:
                await self._on_record(record.topic, record.value)
        finally:
            await consumer.stop()

    async def _on_record(self, topic: str, raw: bytes | None) -> None:
        try:
            data = codec.loads_object(raw, self.settings.max_message_bytes)
            if topic == self.settings.topics.zone_load:
                self.loads.update(codec.validate(ZoneLoadReport, data), time.time())
                return
        except codec.DecodeError as exc:
            metrics.OPENADR_REJECTED.labels(topic, exc.reason).inc()
            log.warning("ignored a message on %s: %s", topic, exc.error)
            return
        decision = self.tracker.on_dr_status(data)
        if decision.responses:
            await self._publish(decision)
            await self.client.send_opt_responses(decision.responses)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._publish(self.tracker.on_tick(time.time()))

    # -- web ---------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        age = self._poll_age()
        body = {"connected": bool(self.connected), "registered":
                self.client.registration_id is not None, "ven_id": self.client.ven_id,
                "vtn_url": self.settings.openadr_vtn_url,
                "last_poll_age_s": None if age != age else round(age, 1),
                "broker_connected": broker_connected(),
                "events": sorted(self.tracker.events)}
        return (200 if self.connected else 503), body

    async def _web(self) -> web.AppRunner:
        return await serve_probes(self.settings.web_host, self.settings.openadr_web_port,
                                  self.health)

    async def run(self) -> None:
        from evgrid.topics import ensure_topics

        s = self.settings
        await ensure_topics(s)
        self.producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all",
                                         **s.kafka_client_kwargs())
        await self.producer.start()
        runner = await self._web()
        log.info("evgrid openadr: VEN %s for zones %s, VTN %s, web :%s", s.openadr_ven_name,
                 ", ".join(self.targets.zones()), s.openadr_vtn_url, s.openadr_web_port)
        # If any part fails, stop whole and loudly: a restart re-reads the VTN's events,
        # where a half-alive VEN would silently stop updating. (Kafka away is not a failure:
        # DR signals wait in `_held`.)
        tasks = [asyncio.create_task(self._vtn()), asyncio.create_task(self._consume()),
                 asyncio.create_task(self._tick()), asyncio.create_task(self._send())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.client.stop()
            await self.producer.stop()
            await runner.cleanup()

    async def _vtn(self) -> None:
        s = self.settings
        await self.client.start_session(s.openadr_retry_max_s)
        await self.client.poll_forever(s.openadr_poll_interval_s, s.openadr_retry_max_s)


def _run(args: argparse.Namespace) -> int:
    try:
        import openleadr  # noqa: F401
    except ImportError:
        raise SystemExit("evgrid openadr needs the OpenADR extra: pip install 'evgrid[openadr]' "
                         "(make test installs it)") from None
    overrides: dict[str, object] = {}
    if args.web_port is not None:
        overrides["openadr_web_port"] = args.web_port
    settings = VenSettings.from_env(**overrides)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("openleadr", "apscheduler", "aiohttp.access"):  # per-poll chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_broker_log(settings.bootstrap_servers)  # quiet, useful logs while Kafka is away
    try:
        ven = Ven(settings)
    except MappingError as exc:
        raise SystemExit(f"evgrid openadr: {exc}") from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_until_stopped(ven))
    return 0


async def _until_stopped(ven: Ven) -> None:
    """SIGTERM (a container stop) ends the VEN cleanly: producer flushed, session closed."""
    task = asyncio.create_task(ven.run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("evgrid openadr stopped")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "openadr", help="run an OpenADR 2.0b VEN: a utility's events in, zone load back out",
        **VenSettings.help_args())
    p.add_argument("--web-port", type=int, default=None,
                   help="overrides EVGRID_OPENADR_WEB_PORT (/health, /metrics)")
    p.set_defaults(func=_run)
