"""evgrid's own processes as subprocesses (`python -m evgrid <command>`), exactly as they run
in production, their settings passed as `EVGRID_*` variables: the demo and the benchmarks
start them this way, and the tests, which SIGTERM or kill -9 them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from evgrid.settings import KafkaSettings, WorkerSettings


class ChildProcess:
    """One evgrid process; its log goes to a file for post-mortems."""

    #: The `evgrid` sub-command this runs.
    command: ClassVar[str]

    def __init__(self, settings: KafkaSettings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._from = 0  # where this run's lines start in the log

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_env()}

    def spawn(self) -> None:
        self._from = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "evgrid", self.command],
                                     env=self.env(), stdout=log, stderr=log)

    def said(self, text: bytes) -> bool:
        """This run has written `text` to its log."""
        return text in self.log_path.read_bytes()[self._from:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, and a kill if it has not ended within `timeout`; its exit code."""
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
        """SIGTERM without waiting: the caller goes on while the process shuts down, and
        reaps it later with `stop()`."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """A kill -9."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_mb(self) -> float:
        """Resident memory of the process, from /proc."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used, from /proc."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the machine's processes have used on all its cores since boot (user,
    nice, system, irq and softirq time from /proc/stat; not idle, I/O wait or time a
    hypervisor took)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class WorkerProcess(ChildProcess):
    """One `evgrid worker` subprocess."""

    command = "worker"
    settings: WorkerSettings

    def __init__(self, settings: WorkerSettings, log_path: Path) -> None:
        super().__init__(settings, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def env(self) -> dict[str, str]:
        # Two malloc arenas instead of one per thread: less RSS, at no cost in speed (see
        # docs/performance.md); an operator's own value wins.
        return {"MALLOC_ARENA_MAX": "2", **super().env()}

    def start(self) -> WorkerProcess:
        self.spawn()
        return self

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
                await asyncio.sleep(0.1)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

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
