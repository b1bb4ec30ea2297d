"""The sink against a real Kafka and a real PostgreSQL: a small fleet's outputs in, the seed's
views checked row by row against what was worked out by hand; then the same offsets replayed
by a second consumer group, which must change nothing at all."""

from __future__ import annotations

import asyncpg
import pytest

from evgrid.metrics import DEADLETTERS
from evgrid.settings import SqlSettings
from evgrid.topics import ensure_topics
from tests.integration.harness import produce
from tests.sql import fleet
from tests.sql.fleet import at
from tests.sql.sinks import count, dump, running, until_committed

pytestmark = pytest.mark.integration


def messages(s: SqlSettings) -> list:
    t = s.topics
    f = fleet
    return [
        (t.station_windows, f.window("S1", "Z1", 1, 30.0, 15.0, 20.0, 2, 2)),
        (t.station_windows, f.window("S1", "Z1", 0, 10.0, 10.0, 10.0, 1, 1)),  # late, older
        (t.station_windows, f.window("S2", "Z1", 1, 12.0, 12.0, 12.5, 1, 1)),
        (t.station_windows, f.window("S3", "Z2", 0, 40.0, 20.0, 22.0, 2, 2)),
        (t.station_windows, f.window("S4", "Z1", 1, 0.0, 0.0, 0.0, 0, 0)),
        (t.zone_load, f.zone_load("Z1", 60, 50.0, 100.0, 2)),
        (t.zone_load, f.zone_load("Z1", 120, 85.0, 100.0, 3, cap=70.0)),
        (t.zone_load, f.zone_load("Z1", 90, 60.0, 100.0, 2)),  # late, older
        (t.zone_load, f.zone_load("Z2", 60, 30.0, 50.0, 1)),
        (t.dr_status, f.status("E1", "Z1", "SCHEDULED", 10)),
        (t.dr_status, f.status("E1", "Z1", "ACTIVE", 100, cap=70.0, current=85.0)),
        (t.dr_status, f.status("E2", "Z2", "ACTIVE", 100, cap=25.0, current=30.0)),
        (t.dr_status, f.status("E2", "Z2", "ENDED", 200, cap=25.0, current=24.0)),
        (t.commands, f.command("c1", "E1", "Z1", "S1", 100, 20.0)),
        (t.commands, f.command("c2", "E1", "Z1", "S2", 100, 12.0)),
        (t.commands, f.command("c3", "E1", "Z1", "S1", 160, 18.0)),
        (t.commands, f.command("c4", "E1", "Z1", "S4", 100, 5.0)),
        (t.commands, f.command("c5", "E1", "Z1", "S4", 170, None, action="CLEAR")),
        (t.commands, f.command("c6", "E2", "Z2", "S3", 100, 10.0)),
        (t.outcomes, f.outcome("c1", "S1", "Accepted", 101)),
        (t.outcomes, f.outcome("c3", "S1", "Accepted", 161)),
        (t.outcomes, f.outcome("c2", "S2", "Rejected", 101)),
        (t.compliance_alerts, f.compliance("S1", "Z1", "E1", "NONCOMPLIANT", 130, 20.0, 28.0)),
        (t.compliance_alerts, f.compliance("S1", "Z1", "E1", "COMPLIANT", 170, 18.0, 17.0)),
        (t.compliance_alerts, f.compliance("S2", "Z1", "E1", "NONCOMPLIANT", 180, 12.0, 14.0)),
        (t.overload_alerts, f.overload("CONTRACT_OVERLOAD", 30, station_id="S3", total=40.0,
                                       limit=35.0)),
        (t.overload_alerts, f.overload("CONTRACT_OVERLOAD_CLEARED", 90, station_id="S3",
                                       total=30.0, limit=35.0)),
        (t.overload_alerts, f.overload("ZONE_OVERLOAD", 150, zone_id="Z1", total=105.0,
                                       limit=100.0)),
    ]


STATION_CURRENT_LOAD = [
    ("S1", "Z1", at(60), at(120), 30.0, 15.0, 20.0, 0.5, 2, 2),
    ("S2", "Z1", at(60), at(120), 12.0, 12.0, 12.5, 0.2, 1, 1),
    ("S3", "Z2", at(0), at(60), 40.0, 20.0, 22.0, 0.666667, 2, 2),
    ("S4", "Z1", at(60), at(120), 0.0, 0.0, 0.0, 0.0, 0, 0),
]
# zone, load, capacity, utilisation %, stations active / members / reporting, cap, shortfall,
# uncontrollable, load age, updated at
ZONE_LOAD_SUMMARY = [
    ("Z1", 85.0, 100.0, 85.0, 3, 4, 3, 70.0, 0.0, 0, 0.5, at(120)),
    ("Z2", 30.0, 50.0, 60.0, 1, 2, 1, None, 0.0, 0, 0.5, at(60)),
]
# S4's latest command is a CLEAR and E2 has ended: neither is allocated.
DR_LOAD_ALLOCATION = [
    ("E1", "Z1", "S1", 18.0, 30.0, at(120), True, "c3", at(160), "Accepted"),
    ("E1", "Z1", "S2", 12.0, 12.0, at(120), False, "c2", at(100), "Rejected"),
]
OVERLOAD_ALERTS = [
    ("CONTRACT_OVERLOAD", "S3", None, 40.0, 35.0, None, 5.0, at(30), False),
    ("CONTRACT_OVERLOAD_CLEARED", "S3", None, 30.0, 35.0, None, 0.0, at(90), False),
    ("ZONE_OVERLOAD", None, "Z1", 105.0, None, 100.0, 5.0, at(150), True),
]


async def rows(db: asyncpg.Connection, view: str, order: str) -> list[tuple]:
    return [tuple(r.values()) for r in await db.fetch(f"SELECT * FROM {view} ORDER BY {order}")]


async def test_views_match_hand_computed_rows_and_a_replay_changes_nothing(
        sql_settings: SqlSettings, db: asyncpg.Connection) -> None:
    await ensure_topics(sql_settings)
    fleet_messages = messages(sql_settings)
    n = await fleet.publish(sql_settings, fleet_messages)
    # One message that fits no model, one whose text PostgreSQL cannot store (a NUL): each
    # skipped and counted, never blocking the records around it.
    n += await produce(sql_settings.bootstrap_servers, sql_settings.topics.commands,
                       [(b"S9", b"{not json")])
    n += await fleet.publish(sql_settings, [(sql_settings.topics.commands, fleet.command(
        "c-nul", "E1", "Z1", "S\x009", 100, 1.0))])
    n += await fleet.publish(sql_settings, [(sql_settings.topics.commands, fleet.command(
        "c7", "E2", "Z2", "S3", 150, 9.0))])

    async with running(sql_settings) as sink:
        await until_committed(sink, n)

    assert await rows(db, "station_current_load", "station_id") == STATION_CURRENT_LOAD
    assert await rows(db, "zone_load_summary", "zone_id") == ZONE_LOAD_SUMMARY
    assert await rows(db, "dr_load_allocation", "station_id") == DR_LOAD_ALLOCATION
    assert await rows(db, "overload_alerts", "detected_at") == OVERLOAD_ALERTS
    # History keeps every fact once, late ones included.
    assert await count(db, "station_windows") == 5
    assert await count(db, "zone_load") == 4
    assert await db.fetchval("SELECT utilization_pct FROM zone_load WHERE zone_id = 'Z1' "
                             "AND ts = $1", at(90)) == 60.0
    assert await count(db, "dr_status_history") == 4
    assert await count(db, "commands") == 7  # c1-c7, not c-nul
    refused = {s.labels["reason"]: s.value for s in DEADLETTERS.collect()[0].samples
               if s.name.endswith("_total") and s.labels["topic"] == sql_settings.topics.commands}
    assert refused == {"not_json": 1.0, "sql_CharacterNotInRepertoireError": 1.0}, refused
    assert await count(db, "alerts") == 6
    assert await db.fetchval("SELECT state FROM dr_events WHERE signal_id = 'E2'") == "ENDED"

    before = await dump(db)
    replay = sql_settings.model_copy(update={"app_id": sql_settings.app_id + "-replay"})
    async with running(replay) as again:
        await until_committed(again, n)
    assert await dump(db) == before


async def test_the_read_only_role_reads_views_and_writes_nothing(
        sql_settings: SqlSettings, db: asyncpg.Connection, sql_dsn: str) -> None:
    await ensure_topics(sql_settings)
    n = await fleet.publish(sql_settings, messages(sql_settings)[:9])
    async with running(sql_settings) as sink:
        await until_committed(sink, n)
    await db.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                     "'evgrid_dashboard') THEN CREATE ROLE evgrid_dashboard LOGIN IN ROLE "
                     "evgrid_readonly; END IF; END $$")
    reader = await asyncpg.connect(sql_dsn.replace("//evgrid@", "//evgrid_dashboard@"))
    try:
        summary = await reader.fetch("SELECT zone_id FROM zone_load_summary ORDER BY zone_id")
        assert [r["zone_id"] for r in summary] == ["Z1", "Z2"]
        # Partitions made after the grants are readable too (default privileges).
        assert await reader.fetchval("SELECT count(*) FROM station_windows") == 5
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("DELETE FROM zone_current")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("CREATE TABLE mine (x int)")
    finally:
        await reader.close()
