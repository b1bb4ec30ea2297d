"""The pure parts of the sink: statements, coalescing a batch, redacting a DSN; and retention
against a real PostgreSQL (no Kafka needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from evgrid import codec
from evgrid.models.frequency import frequency_activation
from evgrid.sql.database import Database, redacted
from evgrid.sql.rows import TABLES, Source, coalesce
from evgrid.sql.rows import _activation as activation_rows
from evgrid.sql.rows import _command as command_rows
from evgrid.sql.rows import _zone_load as zone_rows
from tests.sql import fleet

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LIMIT = 1_000_000


def zone_row(zone: str, ts: datetime, load: float) -> tuple:
    return (zone, ts, load, 100.0, 1, None, 0.0, 0, 2, 1, 0.5, ts)


def test_history_keeps_the_first_of_a_key_current_keeps_the_newest() -> None:
    old, new = NOW - timedelta(seconds=5), NOW
    batch = [zone_row("Z1", new, 2.0), zone_row("Z1", old, 1.0), zone_row("Z2", old, 3.0)]
    assert coalesce(TABLES["zone_current"], batch) == [batch[0], batch[2]]
    dupes = [zone_row("Z1", old, 1.0), zone_row("Z1", old, 9.0)]
    assert coalesce(TABLES["zone_load"], dupes) == [dupes[0]]


def test_statements_never_overwrite_history_and_only_move_current_forward() -> None:
    assert TABLES["commands"].insert_sql().endswith("ON CONFLICT (command_id) DO NOTHING")
    current = TABLES["dr_events"].insert_sql()
    assert "ON CONFLICT (signal_id) DO UPDATE SET" in current
    assert current.endswith("WHERE (EXCLUDED.updated_ts, EXCLUDED.kafka_offset) > "
                            "(t.updated_ts, t.kafka_offset)")


def test_a_password_never_reaches_logs_or_health() -> None:
    assert redacted("postgresql://evgrid:s3cret@db:5432/evgrid") == \
        "postgresql://evgrid:***@db:5432/evgrid"
    assert redacted("postgresql://evgrid@db/evgrid") == "postgresql://evgrid@db/evgrid"


@pytest.mark.integration
async def test_retention_drops_old_days_and_rows_and_writes_no_old_rows(sql_dsn: str) -> None:
    db = Database(sql_dsn, retention_days=30)
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=1)
    src = Source("t", 0, 0, NOW)
    rows: dict[str, list] = {"zone_load": [], "commands": []}
    for ts in (old, recent):
        load = fleet.zone_load("Z1", 0, 5.0, 10.0, 1).model_copy(update={"ts": ts})
        rows["zone_load"].append(zone_rows(codec.dumps(load), src, LIMIT)[0][1])
        cmd = fleet.command(f"c-{ts:%d}", "E1", "Z1", "S1", 0, 5.0).model_copy(
            update={"command_ts": ts})
        rows["commands"].append(command_rows(codec.dumps(cmd), src, LIMIT)[0][1])
    try:
        await db.migrate()
        # Written as of 40 days ago, both are inside retention then.
        assert await db.write(rows, now=old + timedelta(hours=1)) == 4
        # Now the old day goes whole, and the old command row.
        assert await db.apply_retention(NOW) == {
            "zone_load": 1, "dr_status_history": 0, "commands": 1, "command_outcomes": 0,
            "alerts": 0, "station_status": 0}
        # Written as of now, a row older than retention is not written (nor its day made).
        assert await db.write({"zone_load": rows["zone_load"][:1]}, now=NOW) == 0
    finally:
        await db.close()
    conn = await asyncpg.connect(sql_dsn)
    try:
        assert [r["ts"] for r in await conn.fetch("SELECT ts FROM zone_load")] == [recent]
        assert [r["command_ts"] for r in await conn.fetch("SELECT command_ts FROM commands")
                ] == [recent]
        parts = await conn.fetch("SELECT relname FROM pg_class WHERE relname LIKE "
                                 "'zone_load_p%' AND relkind = 'r' ORDER BY 1")
        assert [r["relname"] for r in parts] == [f"zone_load_p{recent:%Y%m%d}"]
    finally:
        await conn.close()


def test_a_field_the_sink_does_not_know_is_ignored_not_refused() -> None:
    load = fleet.zone_load("Z1", 0, 5.0, 10.0, 1)
    newer = orjson.dumps({**orjson.loads(codec.dumps(load)), "feeder_temperature_c": 41})
    src = Source("t", 0, 0, NOW)
    assert zone_rows(newer, src, LIMIT) == zone_rows(codec.dumps(load), src, LIMIT)
    with pytest.raises(codec.DecodeError):
        zone_rows(orjson.dumps({"zone_id": "Z1"}), src, LIMIT)  # missing fields still are


async def test_a_frequency_activation_is_one_row_and_a_replay_changes_nothing(
        sql_dsn: str) -> None:
    start = NOW.timestamp()
    record = frequency_activation({
        "activation_id": f"Z1:{start:.3f}", "zone_id": "Z1", "area_id": "NO1",
        "product": "linear", "committed_kw": 400.0, "baseline_kw": 1000.0,
        "start_ts": start, "end_ts": start + 90.0, "nadir_hz": 49.5, "nadir_ts": start + 20.0,
        "peak_required_kw": 400.0, "delivered_kw": 402.0, "time_to_50_s": 3.1,
        "time_to_100_s": 3.4, "half_activation_s": 5.0, "full_activation_s": 30.0,
        "half_met": True, "full_met": True, "timing_met": True, "meter_resolution_s": 0.5,
        "max_reading_age_s": 1.0, "ended_by": "RECOVERED", "sample_count": 3,
        "samples": [[start, 200.0, 0.0], [start + 3.1, 200.0, 150.0],
                    [start + 20.0, 400.0, 402.0]]})
    [(table, row)] = activation_rows(codec.dumps(record), Source("t", 0, 0, NOW), LIMIT)
    db = Database(sql_dsn, retention_days=30)
    try:
        await db.migrate()
        assert await db.write({table: [row]}, now=NOW) == 1
        assert await db.write({table: [row]}, now=NOW) == 1  # offered again: still one row
    finally:
        await db.close()
    conn = await asyncpg.connect(sql_dsn)
    try:
        [found] = await conn.fetch("SELECT * FROM frequency_activations")
        assert found["activation_id"] == record.activation_id and found["timing_met"]
        assert found["start_ts"] == NOW and found["time_to_50_s"] == 3.1
        assert orjson.loads(found["samples"])[1] == {
            "t": start + 3.1, "required_kw": 200.0, "measured_kw": 150.0}
    finally:
        await conn.close()
