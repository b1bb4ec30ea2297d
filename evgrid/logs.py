"""Quiet, useful logs while Kafka is unreachable.

aiokafka logs every failed connection attempt, metadata refresh, fetch and heartbeat, each at
ERROR: ~1,300 lines in 20 s of outage from one worker, and tens of thousands from a busy one.
An operator needs three lines instead: when the broker was lost, how it is going every 30 s
while it stays down, and when it is back. `install_broker_log()` — called once by every entry
point after its logging is set up — puts a filter on the root handlers that turns those
records into that story, keeps `evgrid_broker_connected` and `/health` current, and watches
for the broker's return.

`BrokerOutage` is the pure part (no clock, no sockets, no logging): tests drive it with a
fake clock. The filter and the probe thread are the edges.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from evgrid.metrics import BROKER_CONNECTED

SUMMARY_EVERY_S = 30.0
# The broker counts as back when it accepts connections and no client has failed for this long
# (a listener that accepts TCP but fails TLS/SASL or is still starting keeps failing).
QUIET_FOR_S = 3.0
PROBE_EVERY_S = 1.0

LOGGER = logging.getLogger("evgrid.broker")

# Records that say "the broker cannot be reached": aiokafka's own loggers report every retry;
# Faust and mode only pass the same connection errors on. While the broker is down, every
# other aiokafka warning or error (coordinator dead, heartbeat failed, ...) is a consequence
# and is counted with the retries; while it is up, such records (a coordinator that is not
# available yet on a fresh cluster) pass as they are.
_KAFKA_LOGGERS = ("aiokafka", "kafka")
_RELAY_LOGGERS = ("faust", "mode")
_CONNECTION_ERROR = re.compile(
    r"Unable connect to node|Connect call failed|NodeNotReadyError|KafkaConnectionError"
    r"|Unable to update metadata|Unable to request metadata|RequestTimedOutError"
)


def broker_failure(logger_name: str, message: str, down: bool = False) -> bool:
    """Is this warning or error record a retry against an unreachable broker?"""
    family = logger_name.split(".", 1)[0]
    if family in _KAFKA_LOGGERS:
        return down or bool(_CONNECTION_ERROR.search(message))
    if family in _RELAY_LOGGERS:
        return bool(_CONNECTION_ERROR.search(message))
    return False


@dataclass
class BrokerOutage:
    """The broker's reachability as the logs tell it: up, or down since when, with how many
    failed attempts. Each method returns the one line to log, or None to stay quiet."""

    summary_every_s: float = SUMMARY_EVERY_S
    quiet_for_s: float = QUIET_FOR_S
    down_since: float | None = None
    failures: int = 0
    last_failure: float = 0.0
    last_summary: float = 0.0
    last_error: str = ""

    @property
    def connected(self) -> bool:
        return self.down_since is None

    def failure(self, now: float, error: str) -> str | None:
        """A client failed to reach the broker: the first failure after being up is news."""
        self.failures += 1
        self.last_failure, self.last_error = now, error
        if self.down_since is not None:
            return None
        self.down_since = self.last_summary = now
        self.failures = 1
        return (f"Kafka broker unreachable: {error} — retrying; a summary follows every "
                f"{self.summary_every_s:.0f} s until it is back")

    def tick(self, now: float) -> str | None:
        """Called every second or so while running: the periodic summary while down."""
        if self.down_since is None or now - self.last_summary < self.summary_every_s:
            return None
        self.last_summary = now
        return (f"Kafka broker still unreachable after {now - self.down_since:.0f} s "
                f"({self.failures:,} failed attempts; last: {self.last_error})")

    def reachable(self, now: float) -> str | None:
        """The broker accepts connections again; back once the clients stop failing."""
        if self.down_since is None or now - self.last_failure < self.quiet_for_s:
            return None
        line = (f"Kafka broker reachable again after {self.last_failure - self.down_since:.0f}"
                f" s down ({self.failures:,} failed attempts)")
        self.down_since = None
        self.failures = 0
        return line


def tcp_reachable(addresses: Iterable[tuple[str, int]], timeout: float = 1.0) -> bool:
    """Does any bootstrap address accept a TCP connection?"""
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def parse_bootstrap(bootstrap_servers: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (as `KafkaSettings.bootstrap_servers` gives it) → address pairs."""
    out = []
    for part in bootstrap_servers.split(","):
        host, _, port = part.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


class BrokerWatch(logging.Filter):
    """The edge: a filter on the root handlers feeding `BrokerOutage`, and a daemon thread
    that logs the summaries and probes for the broker's return."""

    def __init__(self, addresses: list[tuple[str, int]],
                 clock: Callable[[], float] = time.monotonic,
                 probe: Callable[[list[tuple[str, int]]], bool] = tcp_reachable) -> None:
        super().__init__()
        self.addresses = addresses
        self.clock = clock
        self.probe = probe
        self.outage = BrokerOutage()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        BROKER_CONNECTED.set(1)

    @property
    def connected(self) -> bool:
        return self.outage.connected

    def filter(self, record: logging.LogRecord) -> bool:
        verdict = getattr(record, "_evgrid_broker", None)  # one record, several handlers
        if verdict is not None:
            return verdict
        verdict = True
        if record.levelno >= logging.WARNING and broker_failure(
                record.name, record.getMessage(), down=not self.outage.connected):
            with self.lock:
                line = self.outage.failure(self.clock(), _first_line(record.getMessage()))
            verdict = line is not None
            if line is not None:  # this record becomes the one "lost" line
                BROKER_CONNECTED.set(0)
                record.name, record.levelno, record.levelname = LOGGER.name, logging.WARNING, \
                    "WARNING"
                record.msg, record.args, record.exc_info, record.exc_text = line, (), None, None
        record._evgrid_broker = verdict
        return verdict

    def step(self) -> None:
        """One beat of the watcher thread (also called directly by tests)."""
        with self.lock:
            down = not self.outage.connected
            line = self.outage.tick(self.clock()) if down else None
        if line:
            LOGGER.warning(line)
        if down and self.probe(self.addresses):
            with self.lock:
                back = self.outage.reachable(self.clock())
            if back:
                BROKER_CONNECTED.set(1)
                LOGGER.warning(back)

    def run(self) -> None:
        while not self.stopped.wait(PROBE_EVERY_S):
            self.step()


def _first_line(message: str, limit: int = 200) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "connection failed"
    return first if len(first) <= limit else first[:limit] + "…"


_WATCH: BrokerWatch | None = None


def install_broker_log(bootstrap_servers: str) -> BrokerWatch:
    """Every entry point calls this once its logging is configured (the worker from
    `on_setup_root_logger`, after Faust set up its handlers). Idempotent: a second call puts
    the same filter on handlers added since."""
    global _WATCH
    if _WATCH is None:
        _WATCH = BrokerWatch(parse_bootstrap(bootstrap_servers))
        threading.Thread(target=_WATCH.run, name="evgrid-broker-watch", daemon=True).start()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        if _WATCH not in handler.filters:
            handler.addFilter(_WATCH)
    return _WATCH


def broker_connected() -> bool | None:
    """For `/health`: None when this process has no watch installed."""
    return None if _WATCH is None else _WATCH.connected
