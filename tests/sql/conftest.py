"""A real local PostgreSQL per test process (Debian's binaries, `evgrid.sql.local`), started
only when a test asks for it; one fresh database per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from evgrid.settings import SqlSettings
from evgrid.sql.local import LocalPostgres
from tests.integration.harness import isolated_settings


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    started = time.monotonic()
    pg = LocalPostgres().start()
    print(f"\nPostgreSQL accepting connections after {time.monotonic() - started:.1f}s "
          f"at {pg.dsn()}")
    yield pg
    pg.destroy()


@pytest.fixture
def sql_dsn(postgres: LocalPostgres) -> str:
    name = f"t{uuid.uuid4().hex[:12]}"
    postgres.psql("postgres", f"CREATE DATABASE {name}")
    return postgres.dsn(name)


@pytest.fixture
def sql_settings(kafka_broker, unique_prefix: str, tmp_path: Path, sql_dsn: str) -> SqlSettings:
    return isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                             cls=SqlSettings, sql_dsn=sql_dsn, sql_batch_max=500)


@pytest.fixture
async def db(sql_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(sql_dsn)
    yield conn
    await conn.close()
