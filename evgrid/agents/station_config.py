"""Zone mappings (`config.station_zones`, compacted): which zone a station belongs to and its
limits. Decoded and re-routed here; the station side (`StationIngest.on_mapping`) keeps the
mapping with the station's state and tells the zones it leaves and joins."""

from __future__ import annotations

from evgrid import codec
from evgrid.codec import DecodeError
from evgrid.core.types import StationConfig
from evgrid.ingest.routing import Router
from evgrid.ingest.stations import StationIngest
from evgrid.models import StationZone
from evgrid.publisher import Publisher, Record
from evgrid.settings import Settings


class StationConfigs:
    def __init__(self, settings: Settings, ingest: StationIngest, publisher: Publisher) -> None:
        self.settings = settings
        self.ingest = ingest
        self.out = publisher
        self.router = Router(settings.partitions, settings.topics.station_zones_repartition,
                             publisher)

    def on_message(self, record: Record) -> None:
        if not record.value:  # tombstone: the station leaves evgrid
            self._on_tombstone(record)
            return
        try:
            sz = codec.decode(StationZone, record.value, self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(record, err)
            return
        if self.router.rerouted(record, sz.station_id):
            return
        config = StationConfig(
            station_id=sz.station_id,
            zone_id=sz.zone_id,
            max_station_kw=sz.max_station_kw,
            contract_max_kw=sz.contract_max_kw,
            connector_max_kw=dict(sz.connector_max_kw) if sz.connector_max_kw else None,
            profile_mode=sz.profile_mode,
            stack_level=sz.stack_level,
        )
        self.ingest.on_mapping(sz.station_id, record.partition, config)

    def _on_tombstone(self, record: Record) -> None:
        if not record.key:
            self.out.deadletter(record, DecodeError(
                "tombstone_without_key", "a tombstone must carry the station_id as key"))
            return
        station_id = record.key.decode("utf-8", "replace")
        if not self.router.rerouted(record, station_id):
            self.ingest.on_mapping(station_id, record.partition, None)
