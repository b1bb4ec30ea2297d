"""A worker as a subprocess (`python -m evgrid worker`), exactly as it runs in production:
used by the demo, the benchmarks and the integration tests, which SIGTERM or kill -9 it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from evgrid.settings import WorkerSettings


class WorkerProcess:
    """One `evgrid worker` subprocess; its log goes to a file for post-mortems."""

    def __init__(self, settings: WorkerSettings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        # Two malloc arenas instead of one per thread: less RSS, at no cost in speed (see
        # docs/performance.md); an operator's own value wins.
        env = {"MALLOC_ARENA_MAX": "2", **os.environ, **self.settings.to_env()}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evgrid", "worker"], env=env, stdout=log, stderr=log
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Up means: `/health` says ready (tables recovered, batch consumers assigned) and
        this worker has active partitions."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise AssertionError(f"worker exited early:\n{self.log_tail()}")
                try:
                    async with http.get(self.url + "/health") as resp:
                        body = await resp.json()
                        if resp.status == 200 and body["active_partitions"] > 0:
                            return
                except (aiohttp.ClientError, OSError, KeyError):
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def terminate(self) -> None:
        """SIGTERM without waiting: the caller goes on while Faust shuts down (1-2 s), and
        reaps it later with `stop()`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_mb(self) -> float:
        """Resident memory of the worker process, from /proc."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS in /proc status")

    async def metric(self, name: str) -> float:
        """Sum of one Prometheus metric's samples (all label sets) from /metrics."""
        _, text = await self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def get(self, path: str) -> tuple[int, Any]:
        """GET from the worker's web port, with the bearer token when one is configured."""
        token = self.settings.api_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession(headers=headers) as http, \
                http.get(self.url + path) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()
