"""Messages of the internal station-rows topic: the zone side's picture as a log.

One record per station, keyed `station_id`, placed in its zone's partition (not the key's),
compacted: the newest record of each station is what the zone's owner needs to know of it —
zone, limits, the latest reading of each connector and the gateway's last outcome. A station
that leaves a zone (moved to a zone of another partition, or unmapped) is tombstoned in the old
zone's partition. A new owner reads its partitions back from the beginning and has the whole
picture, whatever happened around the rebalance."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class StationRowMessage(BaseModel):
    """Everything the zone's owner knows of one station, as of this record."""

    model_config = _INTERNAL

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
