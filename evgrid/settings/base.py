"""What every evgrid process reads: the broker, its security, the app id and the topic names,
from `EVGRID_*` environment variables.

A field `foo_bar` is set by `EVGRID_FOO_BAR`; topic names by `EVGRID_TOPIC_<NAME>` (e.g.
`EVGRID_TOPIC_METER_VALUES`). Each field's docstring is its documentation:
`python -m evgrid.settings_doc` writes docs/configuration.md from them, and each command's
`--help` lists its process's variables from the same place.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

ENV_PREFIX = "EVGRID_"

S = TypeVar("S", bound="KafkaSettings")


class TopicNames(BaseModel):
    """The topics evgrid shares with the world: inputs, outputs and the gateway's feeds.
    Every process holds all of them, so one set of `EVGRID_TOPIC_*` variables configures a
    whole deployment alike. evgrid's internal topics are not here: they derive from
    `EVGRID_APP_ID` (see `InternalTopics`)."""

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
    frequency: str = "grid.frequency"
    """Input: grid frequency measurements (key area_id), read whole by every worker."""
    frequency_programs: str = "config.frequency_programs"
    """Input: what each zone offers for frequency response (key zone_id, compacted)."""
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
    frequency_activations: str = "grid.frequency_activations"
    """Output: one record per frequency activation (key zone_id): the evidence for the TSO."""
    flexibility: str = "grid.flexibility"
    """Output: per zone, the kW that could be shed now against what is committed."""
    deadletter: str = "evgrid.deadletter"
    """Output: every rejected input message with its reason."""
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


class KafkaSettings(BaseModel):
    """What every process reads: the broker and its security, the app id, topic names and
    how topics are created. `evgrid simulate` and `evgrid report` read only these."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    #: The command whose `--help` lists this class's variables.
    command: ClassVar[str] = "simulate, report"
    #: Fields an operator normally leaves alone: listed apart, marked *advanced*.
    advanced: ClassVar[frozenset[str]] = frozenset()
    #: The topics this process reads or writes (for its `--help`); empty: all of them.
    topics_used: ClassVar[tuple[str, ...]] = ()

    app_id: str = "evgrid"
    """Faust app id: the consumer groups, table and internal topic names derive from it."""
    broker: str = "kafka://127.0.0.1:9092"
    """Kafka bootstrap servers, `host:port` or `kafka://host:port` (`;` between several)."""
    partitions: int = Field(4, ge=1)
    """Partitions of every co-partitioned topic a process creates (inputs, internal topics,
    changelogs)."""
    replication_factor: int = Field(1, ge=1)
    """Replication factor of the topics a process creates."""
    topics: TopicNames = TopicNames()
    max_message_bytes: int = Field(1_000_000, gt=0)
    """An input message larger than this is dead-lettered."""
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
    log_level: str = "info"
    """Log level (`debug`, `info`, `warning`, `error`)."""

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
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
        return self

    def model_copy(self: S, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> S:
        """A copy that is validated like a new object: pydantic's own `model_copy` skips
        validation, so `model_copy(update={"broker_sasl_password": None})` would build a
        SASL configuration without a password that only fails at connect time."""
        values = self.model_dump(exclude={"topics"})
        values["topics"] = self.topics
        values.update(update or {})
        return type(self).model_validate(values)

    def derive(self, cls: type[S], **update: Any) -> S:
        """Settings of another process that shares this one's broker, security, app id and
        topics (the demo and the tests start a gateway, a VEN and a sink beside a worker)."""
        values = {name: getattr(self, name) for name in cls.model_fields
                  if name in type(self).model_fields}
        values.update(update)
        return cls.model_validate(values)

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

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] | None = None,
                 **overrides: object) -> S:
        """Read this class's `EVGRID_*` variables (others are left to the processes that
        read them); explicit overrides win. Errors name the variable."""
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
        """The inverse of `from_env`, for starting processes as subprocesses."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"topics"}).items():
            if value is not None:
                env[ENV_PREFIX + name.upper()] = str(value)
        for name, value in self.topics.model_dump().items():
            env[f"{ENV_PREFIX}TOPIC_{name.upper()}"] = value
        return env

    def with_topic_prefix(self: S, prefix: str) -> S:
        """Isolated topic names, so tests and benchmarks never share a topic. Internal topics
        derive from the app id: a run that must not share them sets its own app id too."""
        names = {k: f"{prefix}.{v}" for k, v in self.topics.model_dump().items()}
        return self.model_copy(update={"topics": TopicNames(**names)})

    @classmethod
    def variables(cls) -> list[tuple[str, FieldInfo]]:
        """(variable, field) for each setting and each topic this process uses, in order."""
        out = [(ENV_PREFIX + name.upper(), info) for name, info in cls.model_fields.items()
               if name != "topics" and name not in cls.advanced]
        out += [(ENV_PREFIX + name.upper(), info) for name, info in cls.model_fields.items()
                if name in cls.advanced]
        used = cls.topics_used or tuple(TopicNames.model_fields)
        out += [(f"{ENV_PREFIX}TOPIC_{name.upper()}", TopicNames.model_fields[name])
                for name in used]
        return out

    @classmethod
    def help_args(cls) -> dict[str, Any]:
        """Arguments for `add_parser` that end a command's `--help` with its variables."""
        import argparse

        return {"epilog": cls.help_epilog(),
                "formatter_class": argparse.RawDescriptionHelpFormatter}

    @classmethod
    def help_epilog(cls) -> str:
        """The `--help` text listing this process's variables: name, default, one line."""
        lines = ["environment variables (all of them: docs/configuration.md):"]
        for variable, info in cls.variables():
            default = info.default
            shown = "" if default is None or default == "" else f" [{default}]"
            first = (info.description or "").split(". ")[0].split("\n\n")[0]
            first = " ".join(first.split()).rstrip(".")
            mark = " (advanced)" if variable.removeprefix(ENV_PREFIX).lower() in cls.advanced \
                else ""
            lines.append(f"  {variable}{shown}{mark}")
            lines += textwrap.wrap(first, width=78, initial_indent="      ",
                                   subsequent_indent="      ")
        return "\n".join(lines)


class ConsumerGroupSettings(KafkaSettings):
    """A process that consumes in a Kafka consumer group: the worker, the gateway, the sink."""

    broker_session_timeout_s: float = Field(10.0, gt=0)
    """Kafka consumer-group session timeout: how soon a dead process's partitions move."""
    broker_rebalance_timeout_s: float = Field(10.0, gt=0)
    """Kafka consumer-group rebalance timeout."""


class WebHost(BaseModel):
    """A process that serves HTTP (`/health`, `/metrics`) on its own port."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    web_host: str = "127.0.0.1"
    """Address the process's web port binds (and, for the worker, advertises to peers; the
    container sets 0.0.0.0)."""
