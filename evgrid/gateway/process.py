"""`evgrid gateway` as a subprocess, for the demo and the benchmark."""

from __future__ import annotations

import asyncio
import time

from evgrid.process import ChildProcess
from evgrid.settings import GatewaySettings


class GatewayProcess(ChildProcess):
    """`python -m evgrid gateway` as a subprocess, ready when it says so."""

    command = "gateway"
    settings: GatewaySettings

    async def start(self, timeout: float = 60.0) -> GatewayProcess:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"gateway exited: {self.log_tail()}")
            if self.said(b"ready on port"):
                return self
            await asyncio.sleep(0.2)
        raise RuntimeError(f"gateway not ready in {timeout}s")
