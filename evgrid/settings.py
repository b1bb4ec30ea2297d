"""The one settings object: every knob, read from `EVGRID_*` environment variables.

A field `foo_bar` is set by `EVGRID_FOO_BAR`; topic names by `EVGRID_TOPIC_<NAME>` (e.g.
`EVGRID_TOPIC_METER_VALUES`). Each field's docstring is its documentation:
`python -m evgrid.settings_doc` writes docs/configuration.md from them.
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

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    meter_values: str = "ocpp.meter_values"
    """Input: one reading of one connector (key station_id)."""
    demand_response: str = "grid.demand_response"
    """Input: DR signals (key zone_id)."""
    station_zones: str = "config.station_zones"
    """Input, compacted: each station's zone and limits (key station_id)."""
    sites: str = "config.sites"
    """Input, compacted: sites (grid connections) and their limits (key site_id); every
    worker reads it whole."""
    commands: str = "ocpp.commands.set_charging_profile"
    """Output: one charging-limit command per station (key station_id)."""
    overload_alerts: str = "alerts.grid.overload"
    """Output: contract and zone overload episodes."""
    compliance_alerts: str = "alerts.dr.compliance"
    """Output: stations that stay above their DR target, and when they comply again."""
    dr_status: str = "grid.dr_status"
    """Output: the state of each DR event on every change (key zone_id)."""
    dr_reports: str = "grid.dr_reports"
    """Output: one settlement report per ended DR event (key zone_id)."""
    signal_alerts: str = "alerts.dr.signals"
    """Output: refused DR signals (too many events in a zone), once per episode."""
    station_alerts: str = "alerts.stations"
    """Output: station alerts such as CLOCK_SKEW."""
    deadletter: str = "evgrid.deadletter"
    """Output: every rejected input message with its reason."""
    meter_repartition: str = "evgrid-meter-values-repartition"
    """Internal: readings whose Kafka key or partition did not match their station_id."""
    station_zones_repartition: str = "evgrid-station-zones-repartition"
    """Internal: zone mappings whose key or partition was wrong, re-routed."""
    dr_repartition: str = "evgrid-dr-repartition"
    """Internal: DR signals whose key or partition was wrong, re-routed."""
    outcomes_repartition: str = "evgrid-outcomes-repartition"
    """Internal: command outcomes whose key or partition was wrong, re-routed."""
    station_rows: str = "evgrid-station-rows"
    """Internal: each station's row (zone, limits, latest loads, last outcome), keyed by
    station_id, in its zone's partition, compacted: the zone side's picture as a log."""
    assignment: str = "evgrid-assignment"
    """Internal, never written: Faust's assignment of its partitions drives every consumer."""
    outcomes: str = "ocpp.commands.outcomes"
    """From `evgrid gateway`: one final outcome per command (key station_id)."""
    station_status: str = "ocpp.station_status"
    """From `evgrid gateway`: chargers' connections, boots and connector statuses."""
    zone_load: str = "grid.zone_load"
    """Output: live load per zone (key zone_id) every `EVGRID_HISTORY_STEP_S`, for the
    OpenADR VEN's TELEMETRY_USAGE reports."""
    station_windows: str = "grid.station_windows"
    """Output: each station's closed 1-minute window (key station_id), one record per station
    per window: the seed's `station_current_load` stream, read by `evgrid sql`."""
    frequency: str = "grid.frequency"
    """Input: grid frequency measurements (key area_id), read whole by every worker."""
    frequency_programs: str = "config.frequency_programs"
    """Input: what each zone offers for frequency response (key zone_id, compacted)."""
    frequency_activations: str = "grid.frequency_activations"
    """Output: one record per frequency activation (key zone_id): the evidence for the TSO."""
    flexibility: str = "grid.flexibility"
    """Output: per zone, the kW that could be shed now against what is committed."""


class Settings(BaseModel):
    """Runtime configuration of a worker, the simulator, the demo and the benchmarks."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    app_id: str = "evgrid"
    """Faust app id: the consumer groups, table and internal topic names derive from it."""
    broker: str = "kafka://127.0.0.1:9092"
    """Kafka bootstrap servers, `host:port` or `kafka://host:port` (`;` between several)."""
    store: str = "rocksdb://"
    """Faust table store: `rocksdb://`, or `memory://` for tests."""
    data_dir: Path = Path("var/data")
    """Where the worker keeps its RocksDB tables."""
    web_host: str = "127.0.0.1"
    """Address the web port binds and advertises to peers (the container sets 0.0.0.0)."""
    web_port: int = Field(6066, ge=0, le=65535)
    """The worker's web port: dashboard, `/metrics`, `/health`, JSON views."""
    api_token: str | None = None
    """When set, the JSON views and the dashboard require `Authorization: Bearer <token>`."""
    partitions: int = Field(4, ge=1)
    """Partitions of every co-partitioned topic (inputs, internal topics, changelogs)."""
    replication_factor: int = Field(1, ge=1)
    """Replication factor of the topics the worker creates."""
    topics: TopicNames = TopicNames()

    stale_after_s: float = Field(120.0, gt=0)
    """A connector not heard from for this long counts as 0 kW."""
    dead_band_kw: float = Field(1.0, ge=0)
    """A station's target change smaller than this is not re-sent."""
    compliance_tolerance_pct: float = Field(5.0, ge=0)
    """A station may exceed its target by this share (or the kW below, whichever is larger)."""
    compliance_tolerance_kw: float = Field(1.0, ge=0)
    """A station may exceed its target by this many kW (or the share above)."""
    compliance_grace_s: float = Field(60.0, ge=0)
    """How long a station may stay above its target before it is non-compliant."""
    window_s: float = Field(60.0, gt=0)
    """Length of the tumbling windows of station statistics."""
    allowed_lateness_s: float = Field(60.0, ge=0)
    """How late a reading may arrive and still count in its window."""
    dc_min_kw: float = Field(5.0, ge=0)
    """The smallest limit a DC connector is given other than 0."""
    ac_min_current_a: float = Field(6.0, ge=0)
    """The smallest AC limit per phase other than 0 (IEC 61851-1: 6 A)."""
    ac_voltage_v: float = Field(230.0, gt=0)
    """Phase voltage for turning AC limits into amperes."""
    ac_phases: int = Field(3, ge=1, le=3)
    """Phases assumed for AC connectors."""
    overload_hysteresis_pct: float = Field(2.0, ge=0, lt=100)
    """An overload episode ends only this far below the limit."""
    event_retention_s: float = Field(86_400.0, ge=0)
    """Ended DR events are kept this long for the views, then removed."""
    connector_forget_s: float = Field(86_400.0, gt=0)
    """A connector without readings for this long is forgotten."""
    max_events_per_zone: int = Field(32, ge=1)
    """Scheduled or active DR events a zone holds at most; a signal beyond is refused."""
    future_tolerance_s: float = Field(60.0, ge=0)
    """A reading stamped more than this ahead of its arrival is dead-lettered; an older stamp
    heard this much later is a clock that jumped back, and is taken."""
    clock_skew_alert_s: float = Field(300.0, gt=0)
    """A station whose measured clock offset exceeds this raises one CLOCK_SKEW per episode."""
    suspend_rotation_s: float = Field(300.0, gt=0)
    """Under SHED or priority 1, who is suspended to meet the cap rotates this often."""
    site_hold_s: float = Field(300.0, ge=0)
    """A limited site is released once its demand has stayed under the release level this
    long."""
    site_release_hysteresis_pct: float = Field(10.0, ge=0, lt=100)
    """A limited site's release level: this far below its threshold (its limit less its
    margin)."""
    site_profile_valid_s: float = Field(86_400.0, gt=0)
    """A site limit's profile is valid this long (`validTo`); it is re-sent at half of it."""
    site_step_s: float = Field(5.0, gt=0)
    """A zone with sites and no DR event is re-evaluated this often (compliance, release);
    a row that changes a site's demand re-evaluates it at once."""
    frequency_silence_s: float = Field(5.0, gt=0)
    """An area with no frequency measurement for this long is disarmed: its zones' response
    is released at once and a FREQUENCY_SILENT alert raised."""

    rocksdb_write_buffer_mb: int = Field(4, ge=1)
    """Advanced: RocksDB write buffer per table partition (RocksDB's own default is 64 MB)."""
    rocksdb_block_cache_mb: int = Field(8, ge=1)
    """Advanced: RocksDB block cache per table partition (RocksDB's own default is 2 GB)."""
    ingest_max_records: int = Field(2000, ge=1)
    """Advanced: records per fetch of the meter-value ingest."""
    ingest_yield_every: int = Field(256, ge=1)
    """Advanced: the meter-value ingest gives way to the control loop every this many
    readings."""
    checkpoint_interval_s: float = Field(30.0, gt=0)
    """How often station state is checkpointed and the ingest's offsets committed."""
    broker_max_poll_records: int = Field(500, ge=1)
    """Advanced: records per poll of Faust's own consumer (its tables' changelogs during
    recovery)."""
    history_step_s: float = Field(5.0, gt=0)
    """How often each zone's load is sampled for the dashboard and `grid.zone_load`."""
    max_message_bytes: int = Field(1_000_000, gt=0)
    """An input message larger than this is dead-lettered."""
    deadletter_raw_limit: int = Field(65_536, gt=0)
    """A dead letter keeps at most this many bytes of the raw message."""
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    """Kafka security protocol of every client evgrid makes."""
    broker_ssl_cafile: Path | None = None
    """PEM of the CA that signed the broker's certificate (default: the system trust store)."""
    broker_ssl_certfile: Path | None = None
    """Client certificate for mutual TLS (with the key file)."""
    broker_ssl_keyfile: Path | None = None
    """Client key for mutual TLS (with the certificate file)."""
    broker_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    """SASL mechanism for the `SASL_*` protocols."""
    broker_sasl_username: str | None = None
    """SASL user name (required for `SASL_*`)."""
    broker_sasl_password: str | None = None
    """SASL password (required for `SASL_*`)."""
    broker_session_timeout_s: float = Field(10.0, gt=0)
    """Kafka consumer-group session timeout: how soon a dead worker's partitions move."""
    broker_rebalance_timeout_s: float = Field(10.0, gt=0)
    """Kafka consumer-group rebalance timeout."""
    log_level: str = "info"
    """Log level of every process (`debug`, `info`, `warning`, `error`)."""

    gateway_host: str = "127.0.0.1"
    """Address `evgrid gateway` listens on for chargers (0.0.0.0 for the network)."""
    gateway_port: int = Field(9000, ge=0, le=65535)
    """Port of the OCPP endpoint; `/metrics` and `/health` are served on it too."""
    gateway_instance_id: str = Field("gw1", min_length=1, max_length=64)
    """This gateway instance's id (unique per instance)."""
    gateway_instances: str = ""
    """Every instance of a multi-gateway deployment, comma-separated (empty: this one alone)."""
    gateway_response_timeout_s: float = Field(30.0, gt=0)
    """How long a charger has to answer a command before one retry, then `Timeout`."""
    gateway_ping_interval_s: float = Field(60.0, ge=0)
    """WebSocket ping interval (0: no pings)."""
    gateway_heartbeat_interval_s: int = Field(300, ge=1)
    """Heartbeat interval given to chargers in BootNotification's answer."""
    gateway_max_frame_bytes: int = Field(65_536, ge=1024)
    """A larger frame closes that charger's connection (1009)."""
    gateway_allowed_ids: str = ""
    """Charge point ids allowed to connect, comma-separated; empty allows any."""
    gateway_security_profile: int = Field(0, ge=0, le=2)
    """OCPP security profile: 0 none, 1 HTTP Basic, 2 TLS + HTTP Basic."""
    gateway_passwords_file: Path | None = None
    """`charge_point_id:hash` lines (`evgrid gateway hash-password`); profiles 1 and 2."""
    gateway_tls_certfile: Path | None = None
    """TLS certificate of the gateway (profile 2)."""
    gateway_tls_keyfile: Path | None = None
    """TLS key of the gateway (profile 2)."""
    gateway_connector_type: ConnectorType = "Type2"
    """Connector type when neither the charger nor the zone map says."""
    openadr_vtn_url: str | None = None
    """The utility's VTN (required for `evgrid openadr`)."""
    openadr_ven_name: str = "evgrid"
    """The VEN name registered at the VTN."""
    openadr_ven_id: str | None = None
    """The VEN id, when the utility assigned one beforehand (else the VTN assigns it)."""
    openadr_cert: Path | None = None
    """The VEN's certificate, PEM (required while signatures are on)."""
    openadr_key: Path | None = None
    """The VEN's private key, PEM (required while signatures are on)."""
    openadr_key_passphrase: str | None = None
    """Passphrase of the VEN's key, if it has one."""
    openadr_ca_file: Path | None = None
    """CA bundle for an `https://` VTN (default: the system roots)."""
    openadr_vtn_fingerprint: str | None = None
    """Fingerprint of the VTN's certificate (required while signatures are on)."""
    openadr_signatures: bool = True
    """XML signatures on messages; off only when set explicitly (tests)."""
    openadr_poll_interval_s: float | None = Field(None, gt=0)
    """How often the VEN polls (default: as often as the VTN asks at registration)."""
    openadr_targets_file: Path | None = None
    """YAML or JSON file mapping OpenADR targets to evgrid zones (required)."""
    openadr_simple_level1_pct: float = Field(25.0, ge=0, le=100)
    """SIMPLE level 1 as a reduction of the zone's baseline, in percent."""
    openadr_simple_level2_pct: float = Field(50.0, ge=0, le=100)
    """SIMPLE level 2 as a reduction of the zone's baseline, in percent."""
    openadr_simple_level3_pct: float = Field(100.0, ge=0, le=100)
    """SIMPLE level 3 as a reduction of the zone's baseline, in percent (a SHED)."""
    openadr_shortfall_optout_kw: float = Field(1.0, ge=0)
    """A zone shortfall above this is one the engine cannot close: the VEN opts out."""
    openadr_report_stale_s: float = Field(30.0, gt=0)
    """Zone load older than this is not reported to the VTN."""
    openadr_retry_max_s: float = Field(30.0, gt=0)
    """Longest wait between registration attempts while the VTN is unreachable."""
    openadr_web_port: int = Field(6067, ge=0, le=65535)
    """The VEN's `/health` and `/metrics` port."""
    sql_dsn: str = "postgresql://evgrid@127.0.0.1:5432/evgrid"
    """The PostgreSQL `evgrid sql` writes to, a libpq URL (a password in it or in
    PGPASSWORD)."""
    sql_retention_days: float = Field(30.0, gt=0)
    """History older than this is removed (whole days of the partitioned tables)."""
    sql_batch_max: int = Field(5000, ge=1)
    """Records per database transaction at most (one transaction per fetched batch)."""
    sql_web_port: int = Field(6068, ge=0, le=65535)
    """The sink's `/health` and `/metrics` port."""

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
    def sql_group(self) -> str:
        """The SQL sink's consumer group: its offsets are committed after each transaction."""
        return f"{self.app_id}-sql"

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
        are stale and their windows closed (stale + window + lateness)."""
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
