"""What `evgrid gateway` publishes: one final outcome per command, and chargers' connections."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evgrid.models.fields import Identifier, Timestamp

_OUTPUT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

OutcomeStatus = Literal[
    "Accepted", "Rejected", "NotSupported", "CallError", "Timeout", "Offline", "Expired",
    "Superseded",
]
#: Every status but the interim `Offline` ends a command.
FINAL_STATUSES: frozenset[str] = frozenset(
    {"Accepted", "Rejected", "NotSupported", "CallError", "Timeout", "Expired", "Superseded"}
)


class CommandOutcome(BaseModel):
    """`ocpp.commands.outcomes` (key `station_id`): exactly one final message per command,
    after at most one interim `Offline`."""

    model_config = _OUTPUT

    command_id: str
    station_id: Identifier
    action: Literal["SET", "CLEAR"]
    status: OutcomeStatus
    reason: str | None = None
    attempt: int = Field(ge=0)
    final: bool
    signal_id: str | None = None
    gateway_id: str
    command_ts: Timestamp | None = None
    ts: Timestamp


class StationStatus(BaseModel):
    """`ocpp.station_status` (key `station_id`): a charger connected, booted, reported a
    connector status or disconnected, and on which gateway instance."""

    model_config = _OUTPUT

    station_id: Identifier
    gateway_id: str
    event: Literal["connected", "boot", "status", "disconnected"]
    connected: bool
    ocpp_version: Literal["1.6", "2.0.1"] | None = None
    connector_id: int | None = None
    connector_status: str | None = None
    error_code: str | None = None
    vendor: str | None = None
    model: str | None = None
    ts: Timestamp
