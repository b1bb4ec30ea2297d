"""`evgrid sql migrate` against a real PostgreSQL: the schema once, then nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from evgrid.sql.migrations import MIGRATIONS

pytestmark = pytest.mark.integration


def migrate(dsn: str) -> str:
    out = subprocess.run([sys.executable, "-m", "evgrid", "sql", "migrate"],
                         env={**os.environ, "EVGRID_SQL_DSN": dsn}, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


async def test_migrate_applies_every_version_once(sql_dsn: str) -> None:
    versions = ", ".join(str(m.version) for m in MIGRATIONS)
    assert f"applied {versions}" in migrate(sql_dsn)
    assert "up to date" in migrate(sql_dsn)
    conn = await asyncpg.connect(sql_dsn)
    try:
        applied = [r["version"] for r in await conn.fetch(
            "SELECT version FROM evgrid_schema_migrations ORDER BY version")]
        views = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")}
    finally:
        await conn.close()
    assert applied == [m.version for m in MIGRATIONS]
    assert views == {"station_current_load", "zone_load_summary", "dr_load_allocation",
                     "overload_alerts"}
