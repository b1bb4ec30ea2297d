"""The NOC dashboard is SQL: each panel's query (Grafana's macros expanded as Grafana would)
and each query the demo prints runs against a migrated database, through the read-only role."""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg
import pytest
import yaml

from evgrid.sql.database import Database
from evgrid.sql.demo import QUERIES

CONFIG = Path(__file__).resolve().parents[2] / "config" / "grafana"
MACROS = {
    r"\$__timeFilter\((\w+(?:\.\w+)?)\)": r"\1 BETWEEN now() - interval '1 day' AND now()",
    r"\$__timeFrom\(\)": "(now() - interval '1 day')",
    r"\$__timeTo\(\)": "now()",
}


def grafana_sql(sql: str) -> str:
    for macro, expansion in MACROS.items():
        sql = re.sub(macro, expansion, sql)
    assert "$__" not in sql, f"a macro this test does not expand: {sql}"
    return sql


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((CONFIG / "evgrid-noc-dashboard.json").read_text())
    return [(p["title"], t["rawSql"]) for p in dashboard["panels"] for t in p["targets"]]


def test_panels_use_the_provisioned_sql_data_source() -> None:
    sources = yaml.safe_load((CONFIG / "provisioning-datasources.yml").read_text())
    [sql] = [s for s in sources["datasources"] if s["uid"] == "evgrid-sql"]
    dashboard = json.loads((CONFIG / "evgrid-noc-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": sql["type"], "uid": "evgrid-sql"}


@pytest.mark.integration
async def test_every_panel_and_demo_query_runs_read_only(sql_dsn: str) -> None:
    db = Database(sql_dsn, 30)
    await db.migrate()
    await db.close()
    admin = await asyncpg.connect(sql_dsn)
    await admin.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                        "'evgrid_dashboard') THEN CREATE ROLE evgrid_dashboard LOGIN IN ROLE "
                        "evgrid_readonly; END IF; END $$")
    await admin.close()
    reader = await asyncpg.connect(sql_dsn.replace("//evgrid@", "//evgrid_dashboard@"))
    try:
        queries = [*panel_queries(), *(("demo", q) for q, _ in QUERIES)]
        assert len(queries) >= 10
        for title, sql in queries:
            try:
                await reader.fetch(grafana_sql(sql))
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{title}: {exc}\n{sql}") from exc
    finally:
        await reader.close()
