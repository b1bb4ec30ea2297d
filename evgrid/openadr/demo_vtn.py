"""`evgrid demo --openadr`: an in-process openleadr VTN standing in for the utility, with test
certificates made on the spot, and `evgrid openadr` registered with it. It issues one SIMPLE
level-2 event and prints the opt and the zone-load reports it receives."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from evgrid.broker.local import free_port
from evgrid.settings import KafkaSettings, VenSettings


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path
    fingerprint: str


def make_cert(directory: Path, name: str) -> CertPair:
    """A self-signed RSA certificate and key (PEM) for OpenADR's XML signatures."""
    from openleadr.utils import certificate_fingerprint

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return CertPair(cert_path, key_path, certificate_fingerprint(pem))


@contextlib.asynccontextmanager
async def utility_and_ven(settings: KafkaSettings, zone_id: str, at_s: float, for_s: float,
                          say: Callable[[str], None]) -> AsyncIterator[None]:
    """Run the VTN here and the VEN as a process while the block runs; stop both after."""
    with tempfile.TemporaryDirectory(prefix="evgrid-demo-openadr-") as tmp:
        async with _utility_and_ven(settings, Path(tmp), zone_id, at_s, for_s, say):
            yield


@contextlib.asynccontextmanager
async def _utility_and_ven(settings: KafkaSettings, workdir: Path, zone_id: str, at_s: float,
                           for_s: float, say: Callable[[str], None]) -> AsyncIterator[None]:
    from openleadr import OpenADRServer, objects

    logging.getLogger("openleadr").setLevel(logging.ERROR)  # its advice is for VTN authors
    reports = 0
    vtn_cert, ven_cert = make_cert(workdir, "vtn"), make_cert(workdir, "ven")
    targets = workdir / "targets.json"
    targets.write_text(json.dumps({"ven_id": {"demo-ven": [zone_id]}}))
    port = free_port()
    registered = asyncio.Event()

    def register(info: dict) -> tuple[str, str]:
        registered.set()
        return "demo-ven", "demo-registration"

    def on_report(ven_id: str, resource_id: str, measurement: str, unit: str, scale: str,
                  min_sampling_interval: dt.timedelta, max_sampling_interval: dt.timedelta):
        if measurement == "Status":
            return None

        def values(points: list[tuple[dt.datetime, float]]) -> None:
            nonlocal reports
            reports += len(points)
            for ts, watts in points:
                say(f"[cyan]utility[/] report {resource_id} power_real {watts / 1000:.1f} kW "
                    f"at {ts:%H:%M:%S}")
        return values, max(min_sampling_interval, dt.timedelta(seconds=5))

    def on_opt(ven_id: str, event_id: str, opt_type: str) -> None:
        say(f"[cyan]utility[/] event {event_id}: the VEN answered {opt_type}")

    server = OpenADRServer(vtn_id="DEMO-UTILITY", cert=str(vtn_cert.cert),
                           key=str(vtn_cert.key), http_host="127.0.0.1", http_port=port,
                           show_fingerprint=False, requested_poll_freq=dt.timedelta(seconds=2))
    server.add_handler("on_create_party_registration", register)
    server.add_handler("on_register_report", on_report)
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        await server.run()
    venv = settings.derive(VenSettings, **dict(
        openadr_vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
        openadr_ven_name="evgrid-demo", openadr_cert=ven_cert.cert, openadr_key=ven_cert.key,
        openadr_vtn_fingerprint=vtn_cert.fingerprint, openadr_targets_file=targets,
        openadr_web_port=free_port(), log_level="warning"))
    log = (workdir / "ven.log").open("wb")
    ven = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evgrid", "openadr", env={**os.environ, **venv.to_env()},
        stdout=log, stderr=log)

    async def issue() -> None:
        await asyncio.wait_for(registered.wait(), 30)
        say("[cyan]utility[/] evgrid's VEN registered (XML signatures on)")
        await asyncio.sleep(at_s)
        start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        server.add_event("demo-ven", "SIMPLE", "level",
                         [objects.Interval(dtstart=start, duration=dt.timedelta(seconds=for_s),
                                           signal_payload=2)],
                         event_id="demo-1", callback=on_opt)
        say(f"[cyan]utility[/] issued SIMPLE level 2 for {zone_id} "
            f"({venv.openadr_simple_level2_pct:.0f} % of baseline) for {for_s:.0f}s")

    task = asyncio.create_task(issue())
    try:
        yield
    finally:
        if not reports:
            say("[cyan]utility[/] received no zone-load report: the worker publishes "
                f"{settings.topics.zone_load} for the VEN's TELEMETRY_USAGE")
        task.cancel()
        with contextlib.suppress(ProcessLookupError):
            ven.terminate()
        await asyncio.wait_for(ven.wait(), 10)
        log.close()
        await server.stop()
