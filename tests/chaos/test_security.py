"""Security: evgrid against a broker over TLS (a self-signed certificate the test makes) and
over SASL_SSL with SCRAM; a client without TLS, or with a wrong password, gets nowhere."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from evgrid.broker.local import LocalKafka, TlsListener
from evgrid.settings import WorkerSettings
from tests.chaos.report import ChaosRow, record
from tests.integration.harness import WorkerProcess, isolated_settings, jdump, produce
from tests.integration.test_dr_loop import mapping, meter

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

PASSWORD = "evgrid-test-store"
SCRAM = ("evgrid", "scram-test-secret")


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A PKCS12 keystore for the broker (CN=localhost, SAN 127.0.0.1) and its certificate as
    PEM, which the clients trust as their CA."""
    keytool = shutil.which("keytool")
    assert keytool, "keytool (Java 17) is needed to make the test certificate"
    store, pem = tmp / "broker.p12", tmp / "ca.pem"
    subprocess.run([keytool, "-genkeypair", "-alias", "kafka", "-keyalg", "RSA", "-keysize",
                    "2048", "-validity", "2", "-dname", "CN=localhost", "-ext",
                    "SAN=ip:127.0.0.1,dns:localhost", "-keystore", str(store), "-storetype",
                    "PKCS12", "-storepass", PASSWORD, "-keypass", PASSWORD],
                   check=True, capture_output=True)
    subprocess.run([keytool, "-exportcert", "-rfc", "-alias", "kafka", "-keystore", str(store),
                    "-storepass", PASSWORD, "-file", str(pem)], check=True, capture_output=True)
    return store, pem


async def reachable(bootstrap: str, **client: object) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **client)
    try:
        await asyncio.wait_for(admin.start(), 15)
        await asyncio.wait_for(admin.describe_cluster(), 15)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


async def station_load(worker: WorkerProcess, sid: str, expect: float) -> float:
    load = None
    for _ in range(100):
        status, body = await worker.get(f"/stations/{sid}")
        load = body.get("load_kw") if status == 200 else None
        if load == expect:
            break
        await asyncio.sleep(0.2)
    return load


async def run_worker_over(conf: WorkerSettings, bootstrap: str, log: Path) -> None:
    """A worker on `conf`: mapping and a reading go in over the same secured listener, and
    the station's load comes out of the worker's view."""
    t, client = conf.topics, conf.kafka_client_kwargs()
    worker = WorkerProcess(conf, log).start()
    try:
        await worker.wait_ready()
        await produce(bootstrap, t.station_zones, [(b"TLS1", jdump(mapping("TLS1", "ZT")))],
                      **client)
        reading = jdump(meter("TLS1", 42.5, time.time()))
        await produce(bootstrap, t.meter_values, [(b"TLS1", reading)], **client)
        assert await station_load(worker, "TLS1", 42.5) == 42.5, worker.log_tail()
        if conf.api_token:  # the JSON views want the token; probes and metrics do not
            anonymous = WorkerProcess(conf.model_copy(update={"api_token": None}), log)
            assert (await anonymous.get("/stations/TLS1"))[0] == 401
            assert (await anonymous.get("/health"))[0] == 200
    finally:
        worker.stop()


async def test_worker_over_tls_and_sasl_scram(unique_prefix, tmp_path) -> None:
    store, ca = self_signed(tmp_path)
    broker = LocalKafka(data_dir=tmp_path / "kafka",
                        tls=TlsListener(store, PASSWORD, scram_users=(SCRAM,)))
    await asyncio.to_thread(broker.start)
    try:
        tls = isolated_settings(broker.ssl_bootstrap, unique_prefix, tmp_path / "d1",
                                broker_security_protocol="SSL", broker_ssl_cafile=ca,
                                api_token="a-bearer-token")
        assert await reachable(broker.ssl_bootstrap, **tls.kafka_client_kwargs())
        assert not await reachable(broker.ssl_bootstrap)  # no TLS, no talk
        await run_worker_over(tls, broker.ssl_bootstrap, tmp_path / "tls.log")

        sasl = isolated_settings(
            broker.sasl_ssl_bootstrap, unique_prefix + "s", tmp_path / "d2",
            broker_security_protocol="SASL_SSL", broker_ssl_cafile=ca,
            broker_sasl_mechanism="SCRAM-SHA-512", broker_sasl_username=SCRAM[0],
            broker_sasl_password=SCRAM[1],
        )
        wrong = sasl.model_copy(update={"broker_sasl_password": "not-the-password"})
        assert not await reachable(broker.sasl_ssl_bootstrap, **wrong.kafka_client_kwargs())
        await run_worker_over(sasl, broker.sasl_ssl_bootstrap, tmp_path / "sasl.log")
        record(ChaosRow("TLS and SASL_SSL/SCRAM listeners", "plaintext client on the TLS port, "
                        "wrong SCRAM password (both refused)", 4, 4))
    finally:
        await asyncio.to_thread(broker.cleanup)
