"""The database schema as numbered migrations, applied in order, each once.

`evgrid_schema_migrations` records what was applied; every migration runs in its own
transaction under an advisory lock, so two sinks starting at once apply each exactly once and
a migration that fails leaves nothing half done. A new schema change is a new entry at the end:
never edit one that has shipped.

History tables carry the time column their questions filter on, indexed; the two large ones
(`station_windows`: one row per station per minute, `zone_load`: one per zone every few
seconds) are partitioned by day so retention drops whole partitions. `*_current` tables hold
the latest row per key (upserted only by newer rows), so the seed's views read a few thousand
rows, never the history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

log = logging.getLogger("evgrid.sql")

#: Held while migrating: one migrator at a time per database.
LOCK_KEY = 0x65766772  # "evgr"
READONLY_ROLE = "evgrid_readonly"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


HISTORY = """
CREATE TABLE station_windows (
    station_id text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    zone_id text,
    total_power_kw double precision NOT NULL,
    avg_power_per_connector_kw double precision NOT NULL,
    max_connector_power_kw double precision NOT NULL,
    energy_kwh double precision NOT NULL,
    active_connectors integer NOT NULL,
    active_sessions integer NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (station_id, window_start)
) PARTITION BY RANGE (window_start);
CREATE INDEX station_windows_zone_time ON station_windows (zone_id, window_start);
CREATE INDEX station_windows_time ON station_windows (window_start);

CREATE TABLE zone_load (
    zone_id text NOT NULL,
    ts timestamptz NOT NULL,
    zone_total_power_kw double precision NOT NULL,
    zone_capacity_kw double precision NOT NULL,
    utilization_pct double precision GENERATED ALWAYS AS (
        CASE WHEN zone_capacity_kw > 0 THEN 100.0 * zone_total_power_kw / zone_capacity_kw
        END) STORED,
    stations_active integer NOT NULL,
    cap_kw double precision,
    shortfall_kw double precision NOT NULL,
    stations_uncontrollable integer NOT NULL,
    members integer NOT NULL,
    members_reporting integer NOT NULL,
    load_age_s double precision,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (zone_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX zone_load_time ON zone_load (ts);

CREATE TABLE dr_status_history (
    kafka_topic text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    signal_id text NOT NULL,
    zone_id text NOT NULL,
    state text NOT NULL,
    signal_type text NOT NULL,
    priority smallint NOT NULL,
    start_ts timestamptz NOT NULL,
    end_ts timestamptz NOT NULL,
    baseline_kw double precision,
    cap_kw double precision,
    current_kw double precision NOT NULL,
    achieved_reduction_kw double precision NOT NULL,
    shortfall_kw double precision NOT NULL,
    stations_commanded integer NOT NULL,
    stations_noncompliant integer NOT NULL,
    load_age_s double precision,
    members integer NOT NULL,
    members_reporting integer NOT NULL,
    updated_ts timestamptz NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX dr_status_history_signal ON dr_status_history (signal_id, updated_ts);
CREATE INDEX dr_status_history_time ON dr_status_history (updated_ts);

CREATE TABLE dr_reports (
    report_id text PRIMARY KEY,
    signal_id text NOT NULL,
    zone_id text NOT NULL,
    signal_type text NOT NULL,
    priority smallint NOT NULL,
    target_reduction_kw double precision,
    target_reduction_pct double precision,
    target_cap_kw double precision,
    baseline_kw double precision,
    cap_kw double precision,
    planned_start_ts timestamptz NOT NULL,
    planned_end_ts timestamptz NOT NULL,
    actual_start_ts timestamptz,
    actual_end_ts timestamptz,
    ended_by text,
    duration_s double precision NOT NULL,
    baseline_energy_kwh double precision NOT NULL,
    drawn_energy_kwh double precision NOT NULL,
    delivered_kwh double precision NOT NULL,
    target_kwh double precision NOT NULL,
    delivered_pct_of_target double precision,
    time_to_cap_s double precision,
    peak_overshoot_kw double precision NOT NULL,
    max_shortfall_kw double precision NOT NULL,
    caps jsonb NOT NULL,
    report_ts timestamptz NOT NULL,
    published_at timestamptz NOT NULL
);
CREATE INDEX dr_reports_signal ON dr_reports (signal_id);
CREATE INDEX dr_reports_start ON dr_reports (planned_start_ts);

CREATE TABLE dr_report_stations (
    report_id text NOT NULL,
    station_id text NOT NULL,
    signal_id text NOT NULL,
    zone_id text NOT NULL,
    average_target_kw double precision,
    measured_avg_kw double precision NOT NULL,
    energy_kwh double precision NOT NULL,
    seconds_commanded double precision NOT NULL,
    seconds_noncompliant double precision NOT NULL,
    seconds_uncontrollable double precision NOT NULL,
    targets jsonb NOT NULL,
    report_ts timestamptz NOT NULL,
    PRIMARY KEY (report_id, station_id)
);

CREATE TABLE commands (
    command_id text PRIMARY KEY,
    action text NOT NULL,
    reason text NOT NULL,
    station_id text NOT NULL,
    zone_id text NOT NULL,
    signal_id text NOT NULL,
    priority smallint NOT NULL,
    target_power_kw double precision,
    station_shed_kw double precision NOT NULL,
    dr_end_ts timestamptz NOT NULL,
    command_ts timestamptz NOT NULL,
    connectors jsonb NOT NULL,
    published_at timestamptz NOT NULL
);
CREATE INDEX commands_signal ON commands (signal_id, station_id, command_ts);
CREATE INDEX commands_station ON commands (station_id, command_ts);
CREATE INDEX commands_time ON commands (command_ts);

CREATE TABLE command_outcomes (
    command_id text NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    final boolean NOT NULL,
    station_id text NOT NULL,
    action text NOT NULL,
    reason text,
    signal_id text,
    gateway_id text NOT NULL,
    command_ts timestamptz,
    ts timestamptz NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (command_id, attempt, status)
);
CREATE INDEX command_outcomes_signal ON command_outcomes (signal_id);
CREATE INDEX command_outcomes_time ON command_outcomes (ts);

-- Every alert topic: source is overload | compliance | station | signal; subject_id is the
-- station, or the zone for zone-wide alerts.
CREATE TABLE alerts (
    source text NOT NULL,
    alert_type text NOT NULL,
    subject_id text NOT NULL,
    detected_at timestamptz NOT NULL,
    station_id text,
    zone_id text,
    signal_id text,
    total_power_kw double precision,
    contract_max_kw double precision,
    capacity_kw double precision,
    overload_kw double precision,
    detail jsonb NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (source, alert_type, subject_id, detected_at)
);
CREATE INDEX alerts_time ON alerts (detected_at);
CREATE INDEX alerts_subject ON alerts (source, subject_id, detected_at);

CREATE TABLE station_status (
    kafka_topic text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    station_id text NOT NULL,
    gateway_id text NOT NULL,
    event text NOT NULL,
    connected boolean NOT NULL,
    ocpp_version text,
    connector_id integer,
    connector_status text,
    error_code text,
    vendor text,
    model text,
    ts timestamptz NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX station_status_station ON station_status (station_id, ts);
CREATE INDEX station_status_time ON station_status (ts);
"""

CURRENT = """
CREATE TABLE station_current (LIKE station_windows INCLUDING DEFAULTS,
                              PRIMARY KEY (station_id));
CREATE INDEX station_current_zone ON station_current (zone_id);
CREATE TABLE zone_current (
    zone_id text PRIMARY KEY,
    ts timestamptz NOT NULL,
    zone_total_power_kw double precision NOT NULL,
    zone_capacity_kw double precision NOT NULL,
    stations_active integer NOT NULL,
    cap_kw double precision,
    shortfall_kw double precision NOT NULL,
    stations_uncontrollable integer NOT NULL,
    members integer NOT NULL,
    members_reporting integer NOT NULL,
    load_age_s double precision,
    published_at timestamptz NOT NULL
);
CREATE TABLE dr_events (LIKE dr_status_history INCLUDING DEFAULTS, PRIMARY KEY (signal_id));
CREATE INDEX dr_events_state ON dr_events (state);
"""

VIEWS = """
-- The seed's names. Per station, its latest closed 1-minute window.
CREATE VIEW station_current_load AS
SELECT station_id, zone_id, window_start, window_end, total_power_kw,
       avg_power_per_connector_kw, max_connector_power_kw, energy_kwh, active_connectors,
       active_sessions
FROM station_current;

-- Per zone, its latest live load (grid.zone_load, every few seconds): stations are its
-- members, stations_reporting those with a live reading, stations_active those drawing.
CREATE VIEW zone_load_summary AS
SELECT zone_id, zone_total_power_kw, zone_capacity_kw,
       CASE WHEN zone_capacity_kw > 0
            THEN round((100.0 * zone_total_power_kw / zone_capacity_kw)::numeric, 2)::float8
       END AS utilization_pct,
       stations_active, members AS stations, members_reporting AS stations_reporting,
       cap_kw, shortfall_kw, stations_uncontrollable, load_age_s, ts AS updated_at
FROM zone_current;

-- Per active DR event and commanded station: its target (the latest SET of the event), what
-- it drew in its latest closed window, whether the worker judges it compliant, and what the
-- charger answered the command.
CREATE VIEW dr_load_allocation AS
WITH active AS (
    SELECT signal_id, zone_id FROM dr_events WHERE state = 'ACTIVE'
), latest AS (
    SELECT DISTINCT ON (c.signal_id, c.station_id) c.*
    FROM commands c JOIN active a ON a.signal_id = c.signal_id
    ORDER BY c.signal_id, c.station_id, c.command_ts DESC, c.command_id DESC
), verdict AS (
    SELECT DISTINCT ON (al.signal_id, al.station_id) al.signal_id, al.station_id,
           al.alert_type AS state
    FROM alerts al JOIN active a ON a.signal_id = al.signal_id
    WHERE al.source = 'compliance'
    ORDER BY al.signal_id, al.station_id, al.detected_at DESC
)
SELECT l.signal_id, l.zone_id, l.station_id, l.target_power_kw,
       s.total_power_kw AS measured_kw, s.window_end AS measured_at,
       COALESCE(v.state, 'COMPLIANT') = 'COMPLIANT' AS compliant,
       l.command_id, l.command_ts, o.status AS command_status
FROM latest l
LEFT JOIN station_current s ON s.station_id = l.station_id
LEFT JOIN verdict v ON v.signal_id = l.signal_id AND v.station_id = l.station_id
LEFT JOIN LATERAL (
    SELECT status FROM command_outcomes co WHERE co.command_id = l.command_id
    ORDER BY co.final DESC, co.ts DESC LIMIT 1
) o ON true
WHERE l.action = 'SET';

-- The seed's overload alerts (station contract and zone capacity), with whether the episode
-- is still open: its subject's latest alert is not a *_CLEARED one.
CREATE VIEW overload_alerts AS
SELECT a.alert_type, a.station_id, a.zone_id, a.total_power_kw, a.contract_max_kw,
       a.capacity_kw, a.overload_kw, a.detected_at,
       a.alert_type NOT LIKE '%\\_CLEARED' AND NOT EXISTS (
           SELECT 1 FROM alerts later
           WHERE later.source = 'overload' AND later.subject_id = a.subject_id
             AND later.detected_at > a.detected_at) AS open
FROM alerts a
WHERE a.source = 'overload';
"""

# The role is created only by a user allowed to (the local cluster's superuser; in a managed
# database an administrator creates it once, see docs/sql.md); grants need it to exist.
READONLY = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READONLY_ROLE}')
       AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
        BEGIN
            CREATE ROLE {READONLY_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{READONLY_ROLE}') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO {READONLY_ROLE}', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {READONLY_ROLE}',
                       current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO '
                       '{READONLY_ROLE}', current_schema());
    ELSE
        RAISE WARNING 'role {READONLY_ROLE} does not exist and % may not create it: '
                      'dashboards need an administrator to create it (docs/sql.md)', current_user;
    END IF;
END $$;
"""

FREQUENCY = """
CREATE TABLE frequency_activations (
    activation_id text PRIMARY KEY,
    zone_id text NOT NULL,
    area_id text NOT NULL,
    product text NOT NULL,
    start_ts timestamptz NOT NULL,
    end_ts timestamptz NOT NULL,
    ended_by text NOT NULL,
    nadir_hz double precision,
    nadir_ts timestamptz,
    committed_kw double precision NOT NULL,
    baseline_kw double precision NOT NULL,
    peak_required_kw double precision NOT NULL,
    delivered_kw double precision NOT NULL,
    time_to_50_s double precision,
    half_activation_s double precision NOT NULL,
    half_met boolean NOT NULL,
    time_to_100_s double precision,
    full_activation_s double precision NOT NULL,
    full_met boolean NOT NULL,
    timing_met boolean NOT NULL,
    meter_resolution_s double precision,
    max_reading_age_s double precision,
    samples jsonb NOT NULL,
    published_at timestamptz NOT NULL
);
CREATE INDEX frequency_activations_zone_time ON frequency_activations (zone_id, start_ts);
CREATE INDEX frequency_activations_time ON frequency_activations (start_ts);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "history tables", HISTORY),
    Migration(2, "current-state tables", CURRENT),
    Migration(3, "the seed's views", VIEWS),
    Migration(4, "read-only role for dashboards", READONLY),
    Migration(5, "frequency activations", FREQUENCY),
)

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS evgrid_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations this database lacks, in order; returns the versions applied."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(BOOKKEEPING)
    for migration in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            done = await conn.fetchval(
                "SELECT 1 FROM evgrid_schema_migrations WHERE version = $1", migration.version)
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO evgrid_schema_migrations (version, name) VALUES ($1, $2)",
                migration.version, migration.name)
        applied_now.append(migration.version)
        log.info("applied migration %d: %s", migration.version, migration.name)
    return applied_now
