"""Messages of the internal `evgrid-station-load` topic (keyed by zone_id): the station side
tells each zone's owner about its stations. One small model per kind, decoded by the one codec
and dispatched by a table of handlers on the zone side; an unknown kind is dead-lettered.

Loads are coalesced: one `loads` message carries every station of the zone whose picture
changed in one ingest batch, each connector as a compact positional tuple."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from evgrid.models.fields import ConnectorType, Identifier, NonNegativeKw

_INTERNAL = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

#: (connector_id, connector_type, power_kw, event_ts, session_id, arrival_ts)
ConnectorLoad = tuple[int, ConnectorType, NonNegativeKw, float, str | None, float]


class StationLoad(BaseModel):
    model_config = _INTERNAL

    station_id: Identifier
    connectors: list[ConnectorLoad]


class StationLimits(BaseModel):
    """A station's mapping as the zone side needs it (`config.station_zones`, validated)."""

    model_config = _INTERNAL

    max_station_kw: NonNegativeKw
    contract_max_kw: NonNegativeKw
    connector_max_kw: dict[ConnectorType, NonNegativeKw] | None = None
    profile_mode: Literal["station", "connector"] = "station"
    stack_level: int = Field(default=1, ge=0, le=99)


class StationJoined(BaseModel):
    """A station is (still) a member of the zone, with these limits."""

    model_config = _INTERNAL

    kind: Literal["joined"] = "joined"
    zone_id: Identifier
    station_id: Identifier
    limits: StationLimits


class StationLeft(BaseModel):
    model_config = _INTERNAL

    kind: Literal["left"] = "left"
    zone_id: Identifier
    station_id: Identifier


class ZoneLoads(BaseModel):
    model_config = _INTERNAL

    kind: Literal["loads"] = "loads"
    zone_id: Identifier
    stations: list[StationLoad]


class StationOutcome(BaseModel):
    """The gateway's outcome of a command to one of the zone's stations."""

    model_config = _INTERNAL

    kind: Literal["outcome"] = "outcome"
    zone_id: Identifier
    station_id: Identifier
    command_id: Identifier
    status: str
    reason: str | None = None
    ts: float


ZoneMessageT = StationJoined | StationLeft | ZoneLoads | StationOutcome
ZoneMessage = Annotated[ZoneMessageT, Field(discriminator="kind")]
ZONE_MESSAGE: TypeAdapter[ZoneMessageT] = TypeAdapter(ZoneMessage)
