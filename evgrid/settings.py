"""The one settings object: every knob, read from `EVGRID_*` environment variables.

Defaults are DESIGN.md's. A field `foo_bar` is set by `EVGRID_FOO_BAR`; topic names by
`EVGRID_TOPIC_<NAME>` (e.g. `EVGRID_TOPIC_METER_VALUES`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evgrid.core.types import Tunables

ENV_PREFIX = "EVGRID_"


class TopicNames(BaseModel):
    """Every topic evgrid reads or writes. The one topic registry builds on these names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter_values: str = "ocpp.meter_values"
    demand_response: str = "grid.demand_response"
    station_zones: str = "config.station_zones"
    commands: str = "ocpp.commands.set_charging_profile"
    overload_alerts: str = "alerts.grid.overload"
    compliance_alerts: str = "alerts.dr.compliance"
    dr_status: str = "grid.dr_status"
    deadletter: str = "evgrid.deadletter"
    # Internal: readings whose Kafka key was not their station_id, re-keyed.
    meter_repartition: str = "evgrid-meter-values-repartition"
    # Internal: station load changes (and DR signals with a wrong key) keyed by zone_id.
    station_load: str = "evgrid-station-load"


class Settings(BaseModel):
    """Runtime configuration of a worker, the simulator, the demo and the benchmarks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = "evgrid"
    broker: str = "kafka://127.0.0.1:9092"
    store: str = "rocksdb://"
    data_dir: Path = Path("var/data")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535)
    api_token: str | None = None
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)
    topics: TopicNames = TopicNames()

    stale_after_s: float = Field(120.0, gt=0)
    dead_band_kw: float = Field(1.0, ge=0)
    compliance_tolerance_pct: float = Field(5.0, ge=0)
    compliance_tolerance_kw: float = Field(1.0, ge=0)
    compliance_grace_s: float = Field(60.0, ge=0)
    window_s: float = Field(60.0, gt=0)
    allowed_lateness_s: float = Field(60.0, ge=0)
    dc_min_kw: float = Field(5.0, ge=0)
    ac_min_current_a: float = Field(6.0, ge=0)
    ac_voltage_v: float = Field(230.0, gt=0)
    ac_phases: int = Field(3, ge=1, le=3)
    overload_hysteresis_pct: float = Field(2.0, ge=0, lt=100)
    event_retention_s: float = Field(86_400.0, ge=0)
    connector_forget_s: float = Field(86_400.0, gt=0)

    # RocksDB's defaults (64 MB write buffers, a 2 GB block cache) are per table partition.
    rocksdb_write_buffer_mb: int = Field(4, ge=1)
    rocksdb_block_cache_mb: int = Field(8, ge=1)
    tick_interval_s: float = Field(1.0, gt=0)
    history_step_s: float = Field(5.0, gt=0)
    max_message_bytes: int = Field(1_000_000, gt=0)
    deadletter_raw_limit: int = Field(65_536, gt=0)
    broker_session_timeout_s: float = Field(10.0, gt=0)
    broker_rebalance_timeout_s: float = Field(10.0, gt=0)
    log_level: str = "info"

    @property
    def broker_url(self) -> str:
        """Faust wants `kafka://host:port`; people type `host:port`. Accept both."""
        return self.broker if "://" in self.broker else f"kafka://{self.broker}"

    @property
    def bootstrap_servers(self) -> str:
        """The same address for plain aiokafka clients (no scheme)."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    def tunables(self) -> Tunables:
        """The subset the pure core needs, as a plain frozen dataclass."""
        names = Tunables.__dataclass_fields__.keys()
        return Tunables(**{name: getattr(self, name) for name in names})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read `EVGRID_*` variables; explicit overrides win. Errors name the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        topics: dict[str, str] = {}
        for name in cls.model_fields:
            if name == "topics":
                continue
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        for name in TopicNames.model_fields:
            raw = env.get(f"{ENV_PREFIX}TOPIC_{name.upper()}")
            if raw:
                topics[name] = raw
        if topics:
            values["topics"] = TopicNames(**topics)
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise SystemExit(f"evgrid: invalid settings: {problems}") from None

    def to_env(self) -> dict[str, str]:
        """The inverse of `from_env`, for starting workers as subprocesses."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"topics"}).items():
            if value is not None:
                env[ENV_PREFIX + name.upper()] = str(value)
        for name, value in self.topics.model_dump().items():
            env[f"{ENV_PREFIX}TOPIC_{name.upper()}"] = value
        return env

    def with_topic_prefix(self, prefix: str) -> Settings:
        """Isolated topic names, so tests and benchmarks never share a topic."""
        names = {k: f"{prefix}.{v}" for k, v in self.topics.model_dump().items()}
        return self.model_copy(update={"topics": TopicNames(**names)})
