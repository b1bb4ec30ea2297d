"""Table definitions: RocksDB-backed, changelogged, values as orjson bytes.

Faust serialises table values from `value_type` only and does not support pydantic models, so
every table stores raw bytes encoded by our one codec; keys are UTF-8 bytes.

Zone-side rows are keyed `zone_id|station_id`, not `station_id`: when a station moves between
zones its old and new rows live in different partitions, and Faust's RocksDB store resolves a
bare key to whichever partition last wrote it — a delete of the old row could hit the new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from evgrid.settings import Settings


@dataclass(frozen=True, slots=True)
class Tables:
    station_state: faust.Table  # station_id -> connectors, windows, contract alarm
    station_config: faust.Table  # station_id -> StationConfig (the station side's mapping)
    zone_stations: faust.Table  # "zone_id|station_id" -> StationRow (zone side)
    zone_control: faust.Table  # zone_id -> members, DR controller, zone overload alarm


def zone_station_key(zone_id: str, station_id: str) -> bytes:
    return f"{zone_id}|{station_id}".encode()


def define_tables(app: faust.App, settings: Settings) -> Tables:
    mb = 1024 * 1024
    # Every table partition is its own RocksDB: its memory budget multiplies by
    # tables x partitions, so it is kept small (RocksDB's defaults would be ~2.2 GB each).
    rocksdb = {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * mb,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * mb,
        "block_cache_compressed_size": mb,
    }

    def table(name: str, help: str) -> faust.Table:
        return app.Table(
            name,
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            help=help,
            options=rocksdb,
        )

    return Tables(
        station_state=table("station-state", "latest reading per connector, windows, alarm"),
        station_config=table("station-config", "station -> zone and limits"),
        zone_stations=table("zone-stations", "stations of each zone with their readings"),
        zone_control=table("zone-control", "DR controller and overload state per zone"),
    )
