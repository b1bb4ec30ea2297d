"""`evgrid sql`'s settings: the sink that writes evgrid's outputs to PostgreSQL."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from evgrid.settings.base import ConsumerGroupSettings, WebHost


class SqlSettings(WebHost, ConsumerGroupSettings):
    """Runtime configuration of `evgrid sql`."""

    command: ClassVar[str] = "sql"
    topics_used: ClassVar[tuple[str, ...]] = (
        "commands", "overload_alerts", "compliance_alerts", "dr_status", "dr_reports",
        "signal_alerts", "station_alerts", "outcomes", "station_status", "zone_load",
        "station_windows")

    sql_dsn: str = "postgresql://evgrid@127.0.0.1:5432/evgrid"
    """The PostgreSQL `evgrid sql` writes to, a libpq URL (a password in it or in
    PGPASSWORD)."""
    sql_retention_days: float = Field(30.0, gt=0)
    """History older than this is removed (whole days of the partitioned tables)."""
    sql_batch_max: int = Field(5000, ge=1)
    """Records per database transaction at most (one transaction per fetched batch)."""
    sql_web_port: int = Field(6068, ge=0, le=65535)
    """The sink's `/health` and `/metrics` port."""

    @property
    def sql_group(self) -> str:
        """The sink's consumer group: its offsets are committed after each transaction."""
        return f"{self.app_id}-sql"
