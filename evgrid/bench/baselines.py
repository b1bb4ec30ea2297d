"""The two ceilings the worker's rate is put beside, measured in the same run on the same
topic: a bare aiokafka consumer with orjson (what Python on this machine can fetch and parse)
and a Faust app whose one agent does nothing (Faust's own per-event ceiling)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from evgrid.bench.load import consumer
from evgrid.settings import WorkerSettings

NOOP_TIMEOUT_S = 600.0


async def raw_baseline(settings: WorkerSettings, count: int) -> float:
    """aiokafka `getmany` + `orjson.loads` of every value, from the first batch on."""
    raw = consumer(settings, settings.topics.meter_values, auto_offset_reset="earliest",
                   enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024)
    await raw.start()
    seen = 0
    started = None
    try:
        while seen < count:
            batch = await raw.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    orjson.loads(message.value)
                    seen += 1
    finally:
        await raw.stop()
    return seen / (time.monotonic() - (started or time.monotonic()))


async def faust_noop_baseline(settings: WorkerSettings, count: int, workdir: Path) -> float:
    """`python -m evgrid.bench.faust_noop` as a child process (its own interpreter, like the
    worker); it writes its rate to a file once it has seen `count` events, then is stopped."""
    result = workdir / f"noop-{settings.app_id}.json"
    log = (workdir / f"noop-{settings.app_id}.log").open("ab")
    env = {**os.environ, **settings.to_env(), "EVGRID_APP_ID": f"noop-{settings.app_id}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evgrid.bench.faust_noop", str(count), str(result),
        env=env, stdout=log, stderr=log,
    )
    deadline = time.monotonic() + NOOP_TIMEOUT_S
    try:
        while not result.exists():
            if proc.returncode is not None or time.monotonic() > deadline:
                tail = (workdir / f"noop-{settings.app_id}.log").read_text(errors="replace")
                raise RuntimeError(f"the Faust no-op baseline gave no result:\n{tail[-3000:]}")
            await asyncio.sleep(0.2)
        return float(orjson.loads(result.read_bytes())["rate"])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
