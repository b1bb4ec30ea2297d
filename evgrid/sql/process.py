"""`evgrid sql` as a subprocess, for the demo, the benchmark and the crash tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evgrid.settings import SqlSettings


class SinkProcess:
    """`python -m evgrid sql`, ready when it says so; `kill()` is a kill -9."""

    def __init__(self, settings: SqlSettings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._from = 0  # where this run's lines start in the log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.sql_web_port}"

    def start(self) -> SinkProcess:
        env = {**os.environ, **self.settings.to_env()}
        self._from = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "evgrid", "sql"], env=env,
                                     stdout=log, stderr=log)
        return self

    async def wait_ready(self, timeout: float = 60.0) -> SinkProcess:
        """Ready: the schema is applied and the consumer started (it says so on stdout)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"evgrid sql exited: {self.log_tail()}")
            if b"evgrid sql: ready" in self.log_path.read_bytes()[self._from:]:
                return self
            await asyncio.sleep(0.1)
        raise RuntimeError(f"evgrid sql not ready in {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
