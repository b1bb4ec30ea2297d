"""Session fixtures: one real Apache Kafka broker for every integration test, started only
when a test asks for it; unique names so tests never share topics or consumer groups."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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


def pytest_configure(config: pytest.Config) -> None:
    """One chaos-row file per run, made by the main process before any test process starts
    (they inherit the variable)."""
    from tests.chaos.report import ROWS_FILE_ENV

    if not hasattr(config, "workerinput"):  # the main process, not a pytest-xdist worker
        path = Path(tempfile.gettempdir()) / f"evgrid-chaos-{uuid.uuid4().hex}.jsonl"
        os.environ[ROWS_FILE_ENV] = str(path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos table when fault-injection tests ran (tests/chaos/report.py)."""
    from tests.chaos.report import ROWS_FILE_ENV, recorded, table

    if hasattr(terminalreporter.config, "workerinput"):
        return  # a pytest-xdist worker: the main process prints every worker's rows
    path = os.environ.get(ROWS_FILE_ENV)
    rows = recorded(path) if path else []
    if rows:
        terminalreporter.section("chaos: faults injected and messages accounted for")
        terminalreporter.write_line(table(rows))
    if path:
        Path(path).unlink(missing_ok=True)
