"""The broker-outage log story, driven by a fake clock: one line when lost, a summary every
30 s while down, one line when back; everything else passes untouched."""

from __future__ import annotations

import logging

import pytest

from evgrid import logs
from evgrid.logs import BrokerOutage, BrokerWatch, broker_failure, parse_bootstrap
from evgrid.metrics import BROKER_CONNECTED

REFUSED = "Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_outage_story_with_a_fake_clock() -> None:
    outage = BrokerOutage()
    assert outage.connected and outage.tick(0.0) is None and outage.reachable(0.0) is None
    first = outage.failure(10.0, REFUSED)
    assert first is not None and "unreachable" in first and "Errno 111" in first
    assert not outage.connected
    assert all(outage.failure(10.0 + i * 0.1, REFUSED) is None for i in range(1, 300))
    assert outage.tick(39.9) is None
    summary = outage.tick(40.0)
    assert summary is not None and "30 s" in summary and "300 failed attempts" in summary
    assert outage.tick(45.0) is None  # next summary only 30 s later
    assert outage.reachable(40.5) is None  # clients failed 0.6 s ago: not back yet
    back = outage.reachable(44.0)
    assert back is not None and "reachable again after 30 s" in back and "300" in back
    assert outage.connected and outage.tick(200.0) is None
    again = outage.failure(300.0, "NodeNotReadyError")
    assert again is not None and not outage.connected  # a new outage is news again


@pytest.mark.parametrize(("logger", "message", "expected"), [
    ("aiokafka.conn", REFUSED, True),
    ("aiokafka", "Unable to update metadata from [1]", True),
    ("aiokafka.consumer.fetcher", "Failed fetch messages from 1: NodeNotReadyError: x", True),
    ("aiokafka.consumer.group_coordinator",
     "Group Coordinator Request failed: NodeNotReadyError", True),
    # a fresh cluster's coordinator is not up yet: normal, not an outage
    ("aiokafka.consumer.group_coordinator",
     "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError", False),
    ("aiokafka.consumer.group_coordinator", "Marking the coordinator dead (node 1)for g", False),
    ("faust.transport.drivers.aiokafka", "Commit failed: KafkaConnectionError: closed", True),
    ("aiokafka.consumer.group_coordinator", "Discovered coordinator 1 for group g", False),
    ("faust.agents", "Agent crashed: ValueError", False),
    ("evgrid.handlers", "Connect call failed", False),  # our own lines are never swallowed
])
def test_which_records_are_broker_retries(logger: str, message: str, expected: bool) -> None:
    assert broker_failure(logger, message) is expected


def test_while_down_every_aiokafka_warning_is_a_retry() -> None:
    coordinator = "Marking the coordinator dead (node 1)for group g."
    assert broker_failure("aiokafka.consumer.group_coordinator", coordinator, down=True)
    assert not broker_failure("faust.agents", "Agent crashed", down=True)


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("a:9092, b:9093,[::1]:9094") == [("a", 9092), ("b", 9093),
                                                          ("::1", 9094)]


def record(name: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def test_filter_and_watcher_thread_step(caplog: pytest.LogCaptureFixture) -> None:
    clock, reachable = Clock(), [False]
    watch = BrokerWatch([("127.0.0.1", 1)], clock=clock, probe=lambda _: reachable[0])
    passed = []
    for i in range(1000):  # 1,000 retries in 10 s, as aiokafka logs them
        clock.now = 1000.0 + i * 0.01
        r = record("aiokafka.conn", REFUSED)
        if watch.filter(r):
            passed.append(r)
        assert watch.filter(r) is (r in passed)  # a second handler sees the same verdict
    assert len(passed) == 1 and passed[0].name == "evgrid.broker"
    assert "unreachable" in passed[0].getMessage()
    assert BROKER_CONNECTED._value.get() == 0 and not watch.connected
    other = record("evgrid.handlers.zone", "zone Z1 activated", logging.INFO)
    assert watch.filter(other) and other.getMessage() == "zone Z1 activated"

    with caplog.at_level(logging.WARNING, logger="evgrid.broker"):
        clock.now = 1031.0
        watch.step()  # 31 s down: the summary; the broker still refuses
        reachable[0] = True
        clock.now = 1040.0
        watch.step()  # accepts connections and no failure for 30 s: back
    lines = [r.getMessage() for r in caplog.records if r.name == "evgrid.broker"]
    assert len(lines) == 2, lines
    assert "still unreachable after 31 s" in lines[0] and "1,000 failed attempts" in lines[0]
    assert "reachable again" in lines[1]
    assert watch.connected and BROKER_CONNECTED._value.get() == 1


def test_install_is_idempotent_and_covers_new_handlers() -> None:
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        watch = logs.install_broker_log("127.0.0.1:1")
        assert logs.install_broker_log("127.0.0.1:1") is watch
        assert handler.filters.count(watch) == 1
        assert logs.broker_connected() is True
    finally:
        root.removeHandler(handler)
