"""Session fixtures: one real Apache Kafka broker for every integration test, started only
when a test asks for it; unique names so tests never share topics or consumer groups."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from evgrid.broker.local import LocalKafka


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    started = time.monotonic()
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"), port=0)
    broker.start()
    print(f"\nKafka accepting connections after {time.monotonic() - started:.1f}s "
          f"at {broker.bootstrap}")
    yield broker
    broker.stop()


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos table when fault-injection tests ran (tests/chaos/report.py)."""
    from tests.chaos.report import ROWS, table

    if ROWS:
        terminalreporter.section("chaos: faults injected and messages accounted for")
        terminalreporter.write_line(table(ROWS))
