"""Fixtures of the broker-backed integration tests."""

from __future__ import annotations

import pytest

from tests.integration.harness import WorkerProcess, isolated_settings


@pytest.fixture
async def worker(kafka_broker, unique_prefix, tmp_path):
    settings = isolated_settings(
        kafka_broker.bootstrap, unique_prefix, tmp_path / "data", compliance_grace_s=3.0,
    )
    w = WorkerProcess(settings, tmp_path / "worker.log").start()
    await w.wait_ready()
    yield w
    assert w.alive(), w.log_tail()
    w.stop()
