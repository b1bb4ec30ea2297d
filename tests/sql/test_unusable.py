"""A database that answers but cannot take writes (read-only after a fail-over, here) is waited
out like an unreachable one: nothing is skipped, nothing committed to Kafka meanwhile."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from evgrid.metrics import DEADLETTERS
from evgrid.settings import SqlSettings
from evgrid.topics import ensure_topics
from tests.integration.harness import wait_for
from tests.sql import fleet
from tests.sql.sinks import count, running, until_committed

pytestmark = pytest.mark.integration


def commands(s: SqlSettings, first: int, n: int) -> list:
    return [(s.topics.commands, fleet.command(f"ro-{i}", "E1", "Z1", f"S{i}", i, 5.0))
            for i in range(first, first + n)]


async def test_a_read_only_database_is_waited_out_and_nothing_is_skipped(
        sql_settings: SqlSettings, db: asyncpg.Connection) -> None:
    await ensure_topics(sql_settings)
    name = await db.fetchval("SELECT current_database()")
    n = await fleet.publish(sql_settings, commands(sql_settings, 0, 5))
    async with running(sql_settings) as sink:
        await until_committed(sink, n)
        connect, attempts = sink.db._connected, 0

        async def counted():  # each attempt of the sink on PostgreSQL
            nonlocal attempts
            attempts += 1
            return await connect()

        sink.db._connected = counted  # type: ignore[method-assign]
        await db.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'evgrid-sql'")
        n += await fleet.publish(sql_settings, commands(sql_settings, 5, 5))
        deadline = time.monotonic() + 10
        while sink.db.up is not False:
            assert time.monotonic() < deadline, "the sink never noticed"
            await asyncio.sleep(0.05)
        tried = attempts
        await wait_for(lambda: attempts >= tried + 3, 10, "three more attempts")
        assert sink.records_committed == 5
        assert await count(db, "commands") == 5
        await db.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
        await until_committed(sink, n)
    assert await count(db, "commands") == 10
    refused = [s for s in DEADLETTERS.collect()[0].samples
               if s.labels.get("topic") == sql_settings.topics.commands]
    assert refused == []
