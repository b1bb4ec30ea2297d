"""A real single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1, built from
Apache Kafka's own jars on Maven Central — for the tests, the demo and the benchmarks.

The jars are resolved once with Maven into a cache directory (`~/.cache/evgrid`); the broker
runs as a JVM subprocess we own, so tests can SIGTERM it, kill -9 it and restart it on the same
data directory and port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = os.environ.get("EVGRID_KAFKA_VERSION", "4.1.1")
LOG4J_VERSION = "2.24.3"
READY_TIMEOUT_S = 60.0

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>evgrid</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="${sys:kafka.logs.dir}/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.log" level="WARN"/>
    <Logger name="org.apache.kafka.storage" level="WARN"/>
  </Loggers>
</Configuration>
"""


def say(message: str) -> None:
    print(f"[evgrid kafka] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("EVGRID_KAFKA_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "evgrid"
    return base / f"kafka-{KAFKA_VERSION}"


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"evgrid: `{tool}` not found on PATH; {hint}")
    return path


def ensure_jars() -> Path:
    """Resolve Apache Kafka and a logging binding from Maven Central, once."""
    lib = cache_dir() / "lib"
    marker = cache_dir() / ".complete"
    if marker.exists():
        return lib
    mvn = require("mvn", "install Maven (e.g. `apt-get install maven`) to fetch Kafka's jars")
    require("java", "install a Java 17 runtime (e.g. `apt-get install openjdk-17-jre-headless`)")
    work = cache_dir()
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    say(f"resolving Apache Kafka {KAFKA_VERSION} jars from Maven Central into {lib} ...")
    started = time.monotonic()
    result = subprocess.run(
        [
            mvn, "-B", "-q", "-f", str(work / "pom.xml"),
            "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={lib}",
        ],
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"evgrid: Maven could not resolve Apache Kafka {KAFKA_VERSION} (exit "
            f"{result.returncode}); check that Maven Central is reachable and retry"
        )
    jars = list(lib.glob("*.jar"))
    marker.write_text(f"{len(jars)} jars\n")
    say(f"{len(jars)} jars ready in {time.monotonic() - started:.1f}s")
    return lib


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener beside the plaintext one: a PKCS12 keystore with the broker's
    certificate, and optionally SCRAM users for a SASL_SSL listener as well."""

    keystore: Path
    password: str
    scram_users: tuple[tuple[str, str], ...] = ()


class LocalKafka:
    """One broker process. `start()` formats the data dir the first time only, so a restart
    keeps its topics and messages."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int = 0,
        extra_properties: dict[str, str] | None = None,
        heap: str = "512m",
        tls: TlsListener | None = None,
    ) -> None:
        self._tmp = None if data_dir else tempfile.mkdtemp(prefix="evgrid-kafka-")
        self.data_dir = Path(data_dir or self._tmp).resolve()
        self.port = port or free_port()
        self.controller_port = free_port()
        self.extra = dict(extra_properties or {})
        self.heap = heap
        self.tls = tls
        self.ssl_port = free_port() if tls else 0
        self.sasl_ssl_port = free_port() if tls and tls.scram_users else 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "message.max.bytes": str(2 * 1024 * 1024),
        }
        if self.tls:
            self._add_tls(props, self.tls)
        props.update(self.extra)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _add_tls(self, props: dict[str, str], tls: TlsListener) -> None:
        """Client listeners over TLS (and SASL_SSL with SCRAM); brokers and the controller
        keep talking plaintext on loopback, and readiness probes use the plaintext port."""
        listeners = {"SSL": self.ssl_port}
        if tls.scram_users:
            listeners["SASL_SSL"] = self.sasl_ssl_port
        extra = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
        props["listeners"] += "," + extra
        props["advertised.listeners"] += "," + extra
        props["listener.security.protocol.map"] += "".join(f",{n}:{n}" for n in listeners)
        props.update({
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(tls.keystore),
            "ssl.keystore.password": tls.password,
            "ssl.key.password": tls.password,
            "ssl.client.auth": "none",
        })
        if tls.scram_users:
            props["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
            for mech in ("scram-sha-256", "scram-sha-512"):
                props[f"listener.name.sasl_ssl.{mech}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        (self.data_dir / "tmp").mkdir(exist_ok=True)
        conf = self.data_dir / "server.properties"
        conf.write_text(self._properties())
        (self.data_dir / "log4j2.xml").write_text(LOG4J2)
        return conf

    def _java(self, lib: Path, *args: str) -> list[str]:
        tmp = self.data_dir / "tmp"
        return [
            require("java", "install a Java 17 runtime"),
            f"-Xmx{self.heap}",
            "-cp", f"{lib}/*",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            f"-DZstdTempFolder={tmp}",
            f"-Dorg.xerial.snappy.tempdir={tmp}",
            *args,
        ]

    def start(self, timeout: float = READY_TIMEOUT_S) -> LocalKafka:
        lib = ensure_jars()
        saved = self.data_dir / "ports"
        if saved.exists():  # a restart: same ports, so clients and the data agree
            ports = [*map(int, saved.read_text().split()), 0, 0]
            self.port, self.controller_port = ports[0], ports[1]
            self.ssl_port = ports[2] or self.ssl_port
            self.sasl_ssl_port = ports[3] or self.sasl_ssl_port
        conf = self._write_config()
        saved.write_text(
            f"{self.port} {self.controller_port} {self.ssl_port} {self.sasl_ssl_port}\n")
        if not (self.data_dir / "kraft" / "meta.properties").exists():
            cluster = uuid.uuid4().hex[:22]
            fmt = subprocess.run(
                self._java(lib, "kafka.tools.StorageTool", "format", "-t", cluster,
                           "-c", str(conf), *self._scram_args()),
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting {self.data_dir} failed:\n{fmt.stderr[-2000:]}")
        out = (self.data_dir / "logs" / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            self._java(lib, "kafka.Kafka", str(conf)), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def _scram_args(self) -> list[str]:
        """SCRAM credentials live in the cluster metadata: KRaft takes them at format time."""
        args: list[str] = []
        for user, password in self.tls.scram_users if self.tls else ():
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                args += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        return args

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Ready = the port accepts connections and a client gets cluster metadata."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.proc.returncode}:\n{self.tail()}")
            if port_open(self.port) and self._probe():
                return
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"Kafka not ready within {timeout:.0f}s:\n{self.tail()}")

    def _probe(self) -> bool:
        """A metadata round trip, on a thread of its own so `start()` works from sync code
        and from inside a running event loop (async tests) alike."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self._metadata_ok()).result()

    async def _metadata_ok(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.describe_cluster()
            return True
        except Exception:  # any failure means "not yet"
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            text = ["(no broker log)"]
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Clean shutdown (SIGTERM), then SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
