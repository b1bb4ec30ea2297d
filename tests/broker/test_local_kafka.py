"""The local Apache Kafka runner: fast start, real round trips, restarts keep data, and the
`evgrid kafka` sub-command in the foreground and detached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from evgrid.broker.local import LocalKafka

pytestmark = pytest.mark.integration


async def round_trip(bootstrap: str, topic: str, payload: bytes) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    return await first_message(bootstrap, topic)


async def first_message(bootstrap: str, topic: str) -> bytes:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        msg = await consumer.getone()
        return msg.value
    finally:
        await consumer.stop()


async def test_session_broker_round_trip(kafka_broker, unique_prefix) -> None:
    assert await round_trip(kafka_broker.bootstrap, unique_prefix, b"hello") == b"hello"


async def test_start_within_30s_and_restart_keeps_data(tmp_path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "k", port=0)
    started = time.monotonic()
    broker.start()
    elapsed = time.monotonic() - started
    print(f"broker accepting connections after {elapsed:.1f}s")
    try:
        assert elapsed < 30
        assert await round_trip(broker.bootstrap, "kept", b"survives") == b"survives"
        port = broker.port
        broker.stop()
        broker.start()  # same data dir: not re-formatted, same port
        assert broker.port == port
        assert await first_message(broker.bootstrap, "kept") == b"survives"
        broker.kill()  # kill -9, then restart: still there
        broker.start()
        assert await first_message(broker.bootstrap, "kept") == b"survives"
    finally:
        broker.stop()


def test_cli_foreground_and_detached(tmp_path) -> None:
    cmd = [sys.executable, "-m", "evgrid", "kafka", "--port", "0"]
    fg = subprocess.Popen([*cmd, "--data-dir", str(tmp_path / "fg")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = fg.stdout.readline() if fg.stdout else ""
        assert line.startswith("bootstrap: 127.0.0.1:"), line
        fg.send_signal(signal.SIGTERM)
        assert fg.wait(30) == 0
    finally:
        if fg.poll() is None:
            fg.kill()

    data = tmp_path / "bg"
    out = subprocess.run([*cmd, "--data-dir", str(data), "--detach"],
                         capture_output=True, text=True, timeout=90, check=True)
    assert "bootstrap: 127.0.0.1:" in out.stdout
    pid = int((data / "kafka.pid").read_text())
    os.kill(pid, 0)  # running in the background
    stop = subprocess.run([sys.executable, "-m", "evgrid", "kafka", "stop", "--data-dir",
                           str(data)], capture_output=True, text=True, timeout=60, check=False)
    assert stop.returncode == 0, stop.stderr
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
