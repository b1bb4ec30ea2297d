"""Messages of the internal station-rows topic: the zone side's picture as a log.

Every record sits in its zone's partition (not the key's), and the topic is compacted:

- a station's *row*, keyed `station_id`: zone, limits, its connectors' latest readings and the
  gateway's last outcome, sent when its mapping or outcome changes. A station that leaves a
  zone (moved to a zone of another partition, or unmapped) is tombstoned in the old zone's
  partition;
- a zone's *loads*, keyed `loads_key(zone_id)`: the stations whose readings changed since the
  last one, coalesced per batch or interval. Compaction keeps them at least as long as the
  stale limit, and an older reading counts 0 kW anyway.

A new owner reads its partitions back from the beginning (skipping loads older than the stale
limit) and has the whole picture, whatever happened around the rebalance."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from evgrid.models.fields import ConnectorType, Identifier, NonNegativeKw

_INTERNAL = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

#: (connector_id, connector_type, power_kw, event_ts, session_id, arrival_ts)
ConnectorLoad = tuple[int, ConnectorType, NonNegativeKw, float, str | None, float]
#: (command_id, status, reason, ts): the gateway's last outcome for the station.
LastOutcome = tuple[Identifier, str, str | None, float]


class StationLimits(BaseModel):
    """A station's mapping as the zone side needs it (`config.station_zones`, validated)."""

    model_config = _INTERNAL

    max_station_kw: NonNegativeKw
    contract_max_kw: NonNegativeKw
    connector_max_kw: dict[ConnectorType, NonNegativeKw] | None = None
    profile_mode: Literal["station", "connector"] = "station"
    stack_level: int = Field(default=1, ge=0, le=99)


#: A zone's loads record is keyed by this prefix and the zone id: never a station's key.
LOADS_KEY_PREFIX = "\x1floads:"


def loads_key(zone_id: str) -> str:
    return LOADS_KEY_PREFIX + zone_id


class StationRowMessage(BaseModel):
    """Everything the zone's owner knows of one station, as of this record."""

    model_config = _INTERNAL

    kind: Literal["row"] = "row"
    zone_id: Identifier
    station_id: Identifier
    limits: StationLimits
    connectors: list[ConnectorLoad] = []
    outcome: LastOutcome | None = None
    #: When the station's mapping was taken (ms): a row of an older mapping, read after a
    #: newer one from another zone's partition, changes nothing.
    mapped_at: int = Field(default=0, ge=0)
    #: The site the station is behind (checked against the zone's sites by the zone side).
    site_id: Identifier | None = None


class StationLoad(BaseModel):
    model_config = _INTERNAL

    station_id: Identifier
    connectors: list[ConnectorLoad]


class ZoneLoadsMessage(BaseModel):
    """The zone's stations whose readings changed since its last loads record."""

    model_config = _INTERNAL

    kind: Literal["loads"] = "loads"
    zone_id: Identifier
    stations: list[StationLoad]


ZonePicture = Annotated[StationRowMessage | ZoneLoadsMessage, Field(discriminator="kind")]
ZONE_PICTURE: TypeAdapter[StationRowMessage | ZoneLoadsMessage] = TypeAdapter(ZonePicture)
