"""`evgrid gateway` as a subprocess, for the demo and the benchmark."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evgrid.settings import GatewaySettings


class GatewayProcess:
    """`python -m evgrid gateway` as a subprocess, ready when it says so."""

    def __init__(self, settings: GatewaySettings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> GatewayProcess:
        env = {**os.environ, **self.settings.to_env()}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "evgrid", "gateway"], env=env,
                                     stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            if b"ready on port" in self.log_path.read_bytes():
                return self
            await asyncio.sleep(0.2)
        raise RuntimeError(f"gateway not ready in {timeout}s")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the gateway has used, from /proc."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
