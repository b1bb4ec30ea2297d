"""Running the sink in the test's event loop, and reading back what it wrote."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg

from evgrid.settings import SqlSettings
from evgrid.sql.rows import TABLES
from evgrid.sql.sink import Sink


@contextlib.asynccontextmanager
async def running(settings: SqlSettings) -> AsyncIterator[Sink]:
    sink = Sink(settings)
    task = asyncio.create_task(sink.run())
    try:
        yield sink
    finally:
        sink.stopping.set()
        await asyncio.wait_for(task, 30)


async def until_committed(sink: Sink, records: int, timeout: float = 60.0) -> None:
    """Wait until the sink has written and committed `records` records."""
    deadline = time.monotonic() + timeout
    while sink.records_committed < records:
        assert time.monotonic() < deadline, (
            f"{sink.records_committed} of {records} records committed after {timeout}s")
        await asyncio.sleep(0.05)


async def dump(conn: asyncpg.Connection) -> dict[str, list[tuple]]:
    """Every row of every table, with its `xmin` (the transaction that last wrote it), so a
    rewrite with equal values shows too."""
    out: dict[str, list[tuple]] = {}
    for name, table in TABLES.items():
        rows = await conn.fetch(f"SELECT xmin::text AS _xmin, * FROM {name} "
                                f"ORDER BY {', '.join(table.key)}")
        out[name] = [tuple(r.values()) for r in rows]
    return out


async def count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
