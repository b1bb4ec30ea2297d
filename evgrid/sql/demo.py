"""The demo's PostgreSQL: a local cluster, the schema, a read-only login for the user, the sink
beside the worker; a ready `psql` line while the demo runs and one query per view at the end."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from evgrid.broker.local import free_port
from evgrid.settings import KafkaSettings, SqlSettings
from evgrid.sql.database import Database
from evgrid.sql.local import LocalPostgres
from evgrid.sql.migrations import READONLY_ROLE
from evgrid.sql.process import SinkProcess

#: The login the demo prints: it may read every table and view, and change nothing.
DASHBOARD_USER = "evgrid_dashboard"

#: One query per view, narrow enough for an 80-column terminal (`SELECT *` shows every
#: column), and what an empty answer means.
QUERIES = (
    ("SELECT zone_id, zone_total_power_kw AS load_kw, zone_capacity_kw AS capacity_kw, "
     "utilization_pct, cap_kw, stations, updated_at::time(0) FROM zone_load_summary "
     "ORDER BY zone_id",
     "no zone load yet: zones report every EVGRID_HISTORY_STEP_S"),
    ("SELECT station_id, zone_id, window_start::time(0), total_power_kw, active_connectors "
     "FROM station_current_load ORDER BY total_power_kw DESC LIMIT 5",
     "no window closed yet: a 1-minute window is published once the readings are "
     "EVGRID_ALLOWED_LATENESS_S (60 s) past its end; `--duration 180` shows them"),
    ("SELECT signal_id, station_id, target_power_kw, measured_kw, compliant, command_status "
     "FROM dr_load_allocation ORDER BY signal_id, station_id LIMIT 5",
     "no DR event is active now (the view lists active ones); ended events are in "
     "dr_reports"),
    ("SELECT alert_type, coalesce(station_id, zone_id) AS subject, total_power_kw, "
     "detected_at::time(0), open FROM overload_alerts ORDER BY detected_at DESC LIMIT 5",
     "no overload alert"),
)


class SqlDemo:
    def __init__(self, settings: KafkaSettings, workdir: Path,
                 say: Callable[[str], object]) -> None:
        self.say = say
        self.workdir = workdir
        self.pg = LocalPostgres()
        self.settings = settings.derive(SqlSettings, sql_dsn=self.pg.dsn(),
                                        sql_web_port=free_port())
        self.sink = SinkProcess(self.settings, workdir / "sql.log")

    @property
    def psql(self) -> str:
        binary = shutil.which("psql") or str(self.pg.bin / "psql")
        return f"{binary} {self.pg.dsn(user=DASHBOARD_USER)}"

    def start(self) -> SqlDemo:
        self.pg.start()
        asyncio.run(self._schema())
        self.pg.psql("evgrid", f"CREATE ROLE {DASHBOARD_USER} LOGIN IN ROLE {READONLY_ROLE}")
        self.sink.start()
        asyncio.run(self.sink.wait_ready(timeout=90))
        self.say(f"     PostgreSQL + `evgrid sql` up; query it while the demo runs:\n"
                 f"       {self.psql}")
        return self

    async def _schema(self) -> None:
        db = Database(self.settings.sql_dsn, self.settings.sql_retention_days)
        try:
            await db.migrate()
        finally:
            await db.close()

    def summary(self) -> None:
        """The psql line and each view's query with what it answers now."""
        self.say(f"\n[bold]SQL[/] (read-only login; PostgreSQL stops with the demo): "
                 f"{self.psql}")
        for query, empty in QUERIES:
            out = subprocess.run([*self.psql.split(), "-P", "footer=off", "-c", query],
                                 capture_output=True, text=True, check=False, timeout=30)
            self.say(f"[bold]{query};[/]")
            # psql's own table, unwrapped: as the user will see it in their terminal
            text = (out.stdout or out.stderr).rstrip()
            print(text if len(text.splitlines()) > 2 else f"{text}\n({empty})", flush=True)

    def stop(self) -> None:
        self.sink.stop()
        self.pg.destroy()


def start_sql(settings: KafkaSettings, workdir: Path, say: Callable[[str], object]) -> SqlDemo:
    """PostgreSQL and the sink for the demo's worker (its topics and app id)."""
    demo = SqlDemo(settings, workdir, say)
    try:
        return demo.start()
    except BaseException:
        demo.stop()
        raise
