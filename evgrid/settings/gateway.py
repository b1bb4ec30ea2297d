"""`evgrid gateway`'s settings: the OCPP endpoint chargers connect to."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator

from evgrid.models.fields import ConnectorType
from evgrid.settings.base import ConsumerGroupSettings


class GatewaySettings(ConsumerGroupSettings):
    """Runtime configuration of one `evgrid gateway` instance."""

    command: ClassVar[str] = "gateway"
    topics_used: ClassVar[tuple[str, ...]] = ("meter_values", "station_zones", "commands",
                                              "outcomes", "station_status", "deadletter")

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

    @model_validator(mode="after")
    def _gateway_security_is_complete(self) -> GatewaySettings:
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
