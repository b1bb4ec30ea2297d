"""The Java and Node chargers as subprocesses the tests drive line by line."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

from tests.gateway.clients.install import HERE, java_classpath, node_dir


class ExternalCharger:
    """`events` collects the lines the charger prints (BOOTED, SET ..., CLEAR ..., CLOSED)."""

    def __init__(self, argv: list[str], name: str, cwd: str | None = None) -> None:
        self.argv, self.name, self.cwd = argv, name, cwd
        self.events: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    @classmethod
    def java(cls, url: str, station_id: str, accept: bool, power_w: float) -> ExternalCharger:
        java = shutil.which("java") or "java"
        return cls([java, "-Xmx64m", "-cp", java_classpath(), "JavaCharger", url, station_id,
                    "accept" if accept else "reject", str(power_w)], station_id)

    @classmethod
    def node(cls, url: str, station_id: str, accept: bool, power_w: float) -> ExternalCharger:
        node = shutil.which("node") or "node"
        return cls([node, str(HERE / "node_charger.js"), url, station_id,
                    "accept" if accept else "reject", str(power_w)], station_id,
                   cwd=str(node_dir()))

    async def start(self) -> ExternalCharger:
        env = None
        if self.cwd:  # node resolves ocpp-rpc from the cache's node_modules
            import os

            env = {**os.environ, "NODE_PATH": f"{self.cwd}/node_modules"}
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.cwd, env=env)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.events.append(line.decode(errors="replace").strip())

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def wait_for(self, prefix: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            hits = [e for e in self.events if e.startswith(prefix)]
            if len(hits) >= count:
                return hits
            if self.proc is not None and self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}: no {count}x {prefix!r}; saw {self.events[-15:]}")

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.send("quit")
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
