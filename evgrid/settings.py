"""The one settings object: every knob, read from `EVGRID_*` environment variables.

Defaults are DESIGN.md's. A field `foo_bar` is set by `EVGRID_FOO_BAR`; topic names by
`EVGRID_TOPIC_<NAME>` (e.g. `EVGRID_TOPIC_METER_VALUES`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evgrid.core.types import Tunables
from evgrid.models.fields import ConnectorType

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
    dr_reports: str = "grid.dr_reports"
    signal_alerts: str = "alerts.dr.signals"
    station_alerts: str = "alerts.stations"
    deadletter: str = "evgrid.deadletter"
    # Internal: readings whose Kafka key or partition did not match their station_id.
    meter_repartition: str = "evgrid-meter-values-repartition"
    # Internal: zone mappings and DR signals whose key or partition was wrong, re-routed.
    station_zones_repartition: str = "evgrid-station-zones-repartition"
    dr_repartition: str = "evgrid-dr-repartition"
    outcomes_repartition: str = "evgrid-outcomes-repartition"
    # Internal: each station's row (zone, limits, latest loads), keyed by station_id, in its
    # zone's partition, compacted: the zone side's picture as a log.
    station_rows: str = "evgrid-station-rows"
    # Internal, never written: Faust's assignment of its partitions drives every consumer.
    assignment: str = "evgrid-assignment"
    # The OCPP gateway's: one final outcome per command, and chargers' connections.
    outcomes: str = "ocpp.commands.outcomes"
    station_status: str = "ocpp.station_status"
    # Live load per zone (key zone_id), published by the worker every few seconds for the
    # OpenADR VEN's TELEMETRY_USAGE reports.
    zone_load: str = "grid.zone_load"


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
    max_events_per_zone: int = Field(32, ge=1)
    # -- chargers' clocks and suspension rotation (issue 12; core/clock.py, core/allocator.py) --
    # A reading stamped more than this ahead of its arrival is dead-lettered; also the clock-
    # reset tolerance (an older stamp heard this much later is a clock that jumped back).
    future_tolerance_s: float = Field(60.0, ge=0)
    # A station whose measured clock offset exceeds this raises one CLOCK_SKEW per episode.
    clock_skew_alert_s: float = Field(300.0, gt=0)
    # Under SHED / priority 1, who is suspended to meet the cap rotates this often.
    suspend_rotation_s: float = Field(300.0, gt=0)

    # RocksDB's defaults (64 MB write buffers, a 2 GB block cache) are per table partition.
    rocksdb_write_buffer_mb: int = Field(4, ge=1)
    rocksdb_block_cache_mb: int = Field(8, ge=1)
    tick_interval_s: float = Field(1.0, gt=0)
    # The meter-value ingest (a batch consumer beside Faust's): records per fetch, how often
    # it yields to DR work, how often station state is checkpointed and offsets committed.
    ingest_max_records: int = Field(2000, ge=1)
    ingest_yield_every: int = Field(256, ge=1)
    checkpoint_interval_s: float = Field(30.0, gt=0)
    # Faust's own consumer (its tables' changelogs during recovery): records per poll.
    broker_max_poll_records: int = Field(500, ge=1)
    history_step_s: float = Field(5.0, gt=0)
    max_message_bytes: int = Field(1_000_000, gt=0)
    deadletter_raw_limit: int = Field(65_536, gt=0)
    # Kafka security: TLS (optionally mutual) and SASL; PLAINTEXT is the local default.
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    broker_ssl_cafile: Path | None = None
    broker_ssl_certfile: Path | None = None
    broker_ssl_keyfile: Path | None = None
    broker_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    broker_sasl_username: str | None = None
    broker_sasl_password: str | None = None
    broker_session_timeout_s: float = Field(10.0, gt=0)
    broker_rebalance_timeout_s: float = Field(10.0, gt=0)
    log_level: str = "info"

    # `evgrid gateway`: the OCPP 1.6J / 2.0.1 central-system endpoint.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(9000, ge=0, le=65535)
    gateway_instance_id: str = Field("gw1", min_length=1, max_length=64)
    # Every instance of a multi-gateway deployment, comma-separated (empty: this one alone).
    gateway_instances: str = ""
    gateway_response_timeout_s: float = Field(30.0, gt=0)
    gateway_ping_interval_s: float = Field(60.0, ge=0)
    gateway_heartbeat_interval_s: int = Field(300, ge=1)
    gateway_max_frame_bytes: int = Field(65_536, ge=1024)
    # Charge point ids allowed to connect, comma-separated; empty allows any.
    gateway_allowed_ids: str = ""
    # OCPP security profile: 0 none, 1 HTTP Basic, 2 TLS + HTTP Basic.
    gateway_security_profile: int = Field(0, ge=0, le=2)
    # `charge_point_id:hash` lines (`evgrid gateway hash-password`); needed for profiles 1, 2.
    gateway_passwords_file: Path | None = None
    gateway_tls_certfile: Path | None = None
    gateway_tls_keyfile: Path | None = None
    # Connector type when neither the charger nor the zone map says.
    gateway_connector_type: ConnectorType = "Type2"
    # `evgrid openadr`: the OpenADR 2.0b VEN (optional extra `evgrid[openadr]`).
    openadr_vtn_url: str | None = None
    openadr_ven_name: str = "evgrid"
    openadr_ven_id: str | None = None
    openadr_cert: Path | None = None
    openadr_key: Path | None = None
    openadr_key_passphrase: str | None = None
    openadr_ca_file: Path | None = None
    openadr_vtn_fingerprint: str | None = None
    # Off only when set explicitly (EVGRID_OPENADR_SIGNATURES=false).
    openadr_signatures: bool = True
    # None: poll as often as the VTN asks at registration.
    openadr_poll_interval_s: float | None = Field(None, gt=0)
    openadr_targets_file: Path | None = None
    # SIMPLE signal levels 1/2/3 as a reduction of the zone's baseline, in percent.
    openadr_simple_level1_pct: float = Field(25.0, ge=0, le=100)
    openadr_simple_level2_pct: float = Field(50.0, ge=0, le=100)
    openadr_simple_level3_pct: float = Field(100.0, ge=0, le=100)
    # A shortfall above this is one the engine cannot close: the VEN opts out, truthfully.
    openadr_shortfall_optout_kw: float = Field(1.0, ge=0)
    # Zone load older than this is not reported to the VTN as live.
    openadr_report_stale_s: float = Field(30.0, gt=0)
    openadr_retry_max_s: float = Field(30.0, gt=0)
    openadr_web_port: int = Field(6067, ge=0, le=65535)

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        proto = self.broker_security_protocol
        if proto.startswith("SASL") and not (self.broker_sasl_username
                                             and self.broker_sasl_password):
            raise ValueError(f"broker_security_protocol={proto} needs EVGRID_BROKER_SASL_USERNAME"
                             " and EVGRID_BROKER_SASL_PASSWORD")
        if (self.broker_ssl_certfile is None) != (self.broker_ssl_keyfile is None):
            raise ValueError("mutual TLS needs both EVGRID_BROKER_SSL_CERTFILE and "
                             "EVGRID_BROKER_SSL_KEYFILE")
        if not proto.endswith("SSL") and (self.broker_ssl_cafile or self.broker_ssl_certfile):
            raise ValueError(f"TLS files are set but broker_security_protocol={proto}; "
                             "set EVGRID_BROKER_SECURITY_PROTOCOL=SSL or SASL_SSL")
        for name in ("broker_ssl_cafile", "broker_ssl_certfile", "broker_ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: no such file {path}")
        return self._gateway_security_is_complete()

    def _gateway_security_is_complete(self) -> Settings:
        if self.gateway_security_profile >= 1 and self.gateway_passwords_file is None:
            raise ValueError("gateway_security_profile >= 1 needs EVGRID_GATEWAY_PASSWORDS_FILE "
                             "(lines of charge_point_id:hash from `evgrid gateway hash-password`)")
        if self.gateway_security_profile == 2 and not (self.gateway_tls_certfile
                                                       and self.gateway_tls_keyfile):
            raise ValueError("gateway_security_profile=2 (TLS) needs EVGRID_GATEWAY_TLS_CERTFILE "
                             "and EVGRID_GATEWAY_TLS_KEYFILE")
        return self

    @property
    def gateway_allowed(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.gateway_allowed_ids.split(",") if p.strip())

    @property
    def gateway_all_instances(self) -> tuple[str, ...]:
        """The deployment's gateway ids, sorted, always including this one."""
        ids = {p.strip() for p in self.gateway_instances.split(",") if p.strip()}
        return tuple(sorted(ids | {self.gateway_instance_id}))

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Settings:
        """A copy that is validated like a new object: pydantic's own `model_copy` skips
        validation, so `model_copy(update={"broker_sasl_password": None})` would build a
        SASL configuration without a password that only fails at connect time."""
        values = self.model_dump(exclude={"topics"})
        values["topics"] = self.topics
        values.update(update or {})
        return type(self).model_validate(values)

    def _ssl_context(self) -> Any:
        if not self.broker_security_protocol.endswith("SSL"):
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=str(self.broker_ssl_cafile) if self.broker_ssl_cafile else None,
            certfile=str(self.broker_ssl_certfile) if self.broker_ssl_certfile else None,
            keyfile=str(self.broker_ssl_keyfile) if self.broker_ssl_keyfile else None,
        )

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security arguments for any aiokafka client (admin, producer, consumer)."""
        proto = self.broker_security_protocol
        if proto == "PLAINTEXT":
            return {}
        kw: dict[str, Any] = {"security_protocol": proto}
        if proto.endswith("SSL"):
            kw["ssl_context"] = self._ssl_context()
        if proto.startswith("SASL"):
            kw.update(sasl_mechanism=self.broker_sasl_mechanism,
                      sasl_plain_username=self.broker_sasl_username,
                      sasl_plain_password=self.broker_sasl_password)
        return kw

    def faust_credentials(self) -> Any:
        """The same, as Faust's `broker_credentials`."""
        proto = self.broker_security_protocol
        if proto == "SSL":
            return self._ssl_context()
        if proto.startswith("SASL"):
            import faust

            return faust.SASLCredentials(
                username=self.broker_sasl_username, password=self.broker_sasl_password,
                mechanism=self.broker_sasl_mechanism, ssl_context=self._ssl_context())
        return None

    @property
    def broker_url(self) -> str:
        """Faust wants `kafka://host:port`; people type `host:port`. Accept both."""
        return self.broker if "://" in self.broker else f"kafka://{self.broker}"

    @property
    def bootstrap_servers(self) -> str:
        """The same address for plain aiokafka clients (no scheme)."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    @property
    def ingest_group(self) -> str:
        """The consumer group the meter-value ingest commits under (and lag is measured on)."""
        return f"{self.app_id}-meter-ingest"

    @property
    def dr_signals_group(self) -> str:
        return f"{self.app_id}-dr-signals"

    @property
    def station_config_group(self) -> str:
        """The consumer group of zone mappings and command outcomes."""
        return f"{self.app_id}-station-config"

    def replay_bound_s(self) -> float:
        """How far back a recovering worker replays meter values at most: older readings
        are stale and their windows closed (DESIGN.md: stale + window + lateness)."""
        return self.stale_after_s + self.window_s + self.allowed_lateness_s

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
                (f"{ENV_PREFIX}{'_'.join(str(p) for p in err['loc']).upper()}: "
                 if err["loc"] else "") + err["msg"]
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
