"""The sink's PostgreSQL side: one connection, kept or re-made; one transaction per batch;
daily partitions made before the rows that need them; retention.

While PostgreSQL cannot be reached the sink waits and retries, and says so once when it is lost
and once when it is back — not once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from evgrid.sql.migrations import migrate
from evgrid.sql.rows import TABLES, Row, coalesce

log = logging.getLogger("evgrid.sql")
T = TypeVar("T")

#: What "the database is unreachable" looks like.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown
)
#: The database refusing one record's data (a NUL in a text, a value out of range): the sink
#: finds that record and skips it. Every other error (unreachable, disk full, read-only after
#: a fail-over, a permission taken away) is waited out and retried: nothing is skipped.
REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)
RETRY_MAX_S = 5.0
#: Tables whose old rows retention deletes (the partitioned ones drop whole days instead).
DELETE_OLD = {
    "dr_status_history": "updated_ts", "commands": "command_ts", "command_outcomes": "ts",
    "alerts": "detected_at", "station_status": "ts",
}


def redacted(dsn: str) -> str:
    """The DSN without its password, for logs and /health."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


class Database:
    def __init__(self, dsn: str, retention_days: float) -> None:
        self.dsn = dsn
        self.retention = timedelta(days=retention_days)
        self.conn: asyncpg.Connection | None = None
        self.up: bool | None = None  # None: not tried yet
        self.partitions: set[str] = set()

    def _state(self, up: bool, detail: str = "") -> None:
        """One log line per change of state, never one per attempt."""
        if up == self.up:
            return
        was, self.up = self.up, up
        if up and was is None:
            log.info("PostgreSQL available at %s", redacted(self.dsn))
        elif up:  # as loud as the loss, so an operator at WARNING sees both
            log.warning("PostgreSQL available again at %s; resuming", redacted(self.dsn))
        else:
            log.warning("PostgreSQL unavailable at %s (%s); waiting, nothing is committed "
                        "to Kafka meanwhile", redacted(self.dsn), detail)

    async def _connected(self) -> asyncpg.Connection:
        if self.conn is None or self.conn.is_closed():
            # A commit must be durable before the sink commits its Kafka offsets: with
            # synchronous_commit off, a server crash loses transactions it reported committed.
            self.conn = await asyncpg.connect(
                self.dsn, timeout=10, command_timeout=60,
                server_settings={"synchronous_commit": "on",
                                 "application_name": "evgrid-sql"})
        return self.conn

    async def _drop(self) -> None:
        if self.conn is not None:
            self.conn.terminate()
            self.conn = None

    async def retrying(self, work: Callable[[asyncpg.Connection], Awaitable[T]],
                       stop: asyncio.Event | None = None) -> T | None:
        """Run `work(conn)` until it succeeds, reconnecting while PostgreSQL is away or
        unusable; None if `stop` is set first. A refused record's error is raised."""
        delay = 0.2
        while stop is None or not stop.is_set():
            try:
                result = await work(await self._connected())
            except REFUSED:
                raise
            except (*UNREACHABLE, asyncpg.PostgresError) as exc:
                self._state(False, f"{type(exc).__name__}: {exc}".strip())
                await self._drop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._state(True)
            return result
        return None

    async def migrate(self, stop: asyncio.Event | None = None) -> list[int] | None:
        return await self.retrying(migrate, stop)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close(timeout=5)
            self.conn = None

    # -- writing ------------------------------------------------------------------------------

    async def write(self, rows: dict[str, list[Row]], now: datetime,
                    stop: asyncio.Event | None = None) -> int | None:
        """Every row in one transaction (retried whole until it commits); rows of the
        partitioned tables older than retention are left out. Returns rows offered."""
        cutoff = now - self.retention
        batches: dict[str, list[Row]] = {}
        for name, table_rows in rows.items():
            table = TABLES[name]
            kept = coalesce(table, table_rows)
            if table.partitioned_by is not None:
                at = table.columns.index(table.partitioned_by)
                kept = [r for r in kept if r[at] >= cutoff]
            if kept:
                batches[name] = kept

        async def work(conn: asyncpg.Connection) -> int:
            made: set[str] = set()
            async with conn.transaction():
                for name, table_rows in batches.items():
                    table = TABLES[name]
                    if table.partitioned_by is not None:
                        at = table.columns.index(table.partitioned_by)
                        made |= await self._ensure_partitions(conn, name,
                                                              (r[at] for r in table_rows))
                    await conn.executemany(table.insert_sql(), table_rows)
            self.partitions |= made  # only once committed: a rollback undoes them too
            return sum(len(r) for r in batches.values())

        return await self.retrying(work, stop)

    async def write_each(self, records: list[tuple[str, list[tuple[str, Row]]]],
                         now: datetime, stop: asyncio.Event | None = None
                         ) -> tuple[int, list[tuple[str, str]]] | None:
        """The slow path, when the database refused a batch's data (a NUL character in a
        text, say): one transaction still, each record's rows under a savepoint of their
        own, so one record it refuses is skipped — returned as (topic, reason) — and every
        other record is written. Returns (rows offered, refused)."""
        cutoff = now - self.retention

        async def work(conn: asyncpg.Connection) -> tuple[int, list[tuple[str, str]]]:
            offered, refused = 0, []
            made: set[str] = set()
            async with conn.transaction():
                for topic, record_rows in records:
                    try:
                        async with conn.transaction():  # a savepoint
                            mine: set[str] = set()
                            for name, row in record_rows:
                                table = TABLES[name]
                                if table.partitioned_by is not None:
                                    at = row[table.columns.index(table.partitioned_by)]
                                    if at < cutoff:
                                        continue
                                    mine |= await self._ensure_partitions(conn, name, [at],
                                                                          made)
                                await conn.execute(table.insert_sql(), *row)
                                offered += 1
                        made |= mine
                    except REFUSED as exc:
                        refused.append((topic, f"sql_{type(exc).__name__}"))
                        log.warning("PostgreSQL refused a record of %s, skipped: %s", topic, exc)
            self.partitions |= made
            return offered, refused

        return await self.retrying(work, stop)

    async def _ensure_partitions(self, conn: asyncpg.Connection, table: str,
                                 times: Iterable[datetime], pending: set[str] | None = None
                                 ) -> set[str]:
        """Make the daily partitions `times` fall in; returns the names made (known to exist
        only once the caller's transaction commits)."""
        made: set[str] = set()
        for day in sorted({t.astimezone(UTC).date() for t in times}):
            name = partition_name(table, day)
            if name in self.partitions or name in made or (pending and name in pending):
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start.isoformat()}') "
                f"TO ('{(start + timedelta(days=1)).isoformat()}')")
            made.add(name)
        return made

    # -- retention ----------------------------------------------------------------------------

    async def apply_retention(self, now: datetime,
                              stop: asyncio.Event | None = None) -> dict[str, int]:
        """Drop the daily partitions wholly older than retention, delete older rows of the
        other history tables; returns what went, per table."""
        cutoff = now - self.retention

        async def work(conn: asyncpg.Connection) -> dict[str, int]:
            gone: dict[str, int] = defaultdict(int)
            for name, table in TABLES.items():
                if table.partitioned_by is None:
                    continue
                parts = await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1", name)
                for part in parts:
                    relname = part["relname"]
                    day = datetime.strptime(relname.rsplit("_p", 1)[1], "%Y%m%d")
                    if day.replace(tzinfo=UTC) + timedelta(days=1) <= cutoff:
                        await conn.execute(f"DROP TABLE IF EXISTS {relname}")
                        self.partitions.discard(relname)
                        gone[name] += 1
            for name, column in DELETE_OLD.items():
                status = await conn.execute(f"DELETE FROM {name} WHERE {column} < $1", cutoff)
                gone[name] += int(status.split()[-1])
            return dict(gone)

        result = await self.retrying(work, stop)
        return result or {}
