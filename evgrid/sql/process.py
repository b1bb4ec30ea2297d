"""`evgrid sql` as a subprocess, for the demo, the benchmark and the crash tests."""

from __future__ import annotations

import asyncio
import time

from evgrid.process import ChildProcess
from evgrid.settings import SqlSettings


class SinkProcess(ChildProcess):
    """`python -m evgrid sql`, ready when it says so; `kill()` is a kill -9."""

    command = "sql"
    settings: SqlSettings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.sql_web_port}"

    def start(self) -> SinkProcess:
        self.spawn()
        return self

    async def wait_ready(self, timeout: float = 60.0) -> SinkProcess:
        """Ready: the schema is applied and the consumer started (it says so on stdout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"evgrid sql exited: {self.log_tail()}")
            if self.said(b"evgrid sql: ready"):
                return self
            await asyncio.sleep(0.1)
        raise RuntimeError(f"evgrid sql not ready in {timeout:.0f}s: {self.log_tail()}")
