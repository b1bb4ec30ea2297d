"""Table definitions, and Faust's table manager without its start-up wait: RocksDB-backed,
changelogged, values as bytes.

Faust serialises table values from `value_type` only and does not support pydantic models, so
every table stores raw bytes; what the bytes mean is `evgrid.state.codecs`' business, and only
`evgrid.state` reads or writes these tables.

Zone members are no table: they are the station-rows topic, read back by each zone's owner.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.tables import TableManager as FaustTableManager

from evgrid.settings import WorkerSettings


class TableManager(FaustTableManager):
    """Faust's manager sleeps a second at start so that tables defined late can still
    register; `create_app` defines every table before the app starts, so it starts at once."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


@dataclass(frozen=True, slots=True)
class Tables:
    station_state: faust.Table  # station_id -> checkpoint: readings, open windows, alarm
    station_config: faust.Table  # station_id -> StationConfig (the station side's mapping)
    station_windows: faust.Table  # station_id -> the last closed 1-minute windows
    zone_control: faust.Table  # zone_id -> DR controller, zone overload alarm


#: Table name -> what it holds. Their changelog topics are created with the others by
#: `evgrid.topics.ensure_topics`: a changelog that one worker creates while another is already
#: running is missing from the other's metadata for a moment, and Faust refuses every table
#: write there (PartitionsMismatch, "0 partitions") — losing zone memberships at start-up.
TABLES = {
    "station_state": ("station-state", "checkpoint: readings, open windows, alarm"),
    "station_config": ("station-config", "station -> zone and limits"),
    "station_windows": ("station-windows", "closed 1-minute windows"),
    "zone_control": ("zone-control", "DR controller and overload state per zone"),
}
#: Changed on every checkpoint; the others change rarely and get the smallest RocksDB budget.
BUSY_TABLES = {"station_state"}


def changelog_topic(app_id: str, table_name: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{app_id}-{table_name}-changelog"


#: RocksDB write buffer and block cache of each busy table partition, in MB (RocksDB's own
#: defaults are 64 MB and 2 GB).
WRITE_BUFFER_MB = 4
BLOCK_CACHE_MB = 8


def define_tables(app: faust.App, settings: WorkerSettings) -> Tables:
    mb = 1024 * 1024
    # Every table partition is its own RocksDB: its memory budget multiplies by
    # tables x partitions, so it is kept small (RocksDB's defaults would be ~2.2 GB each).
    rocksdb = {
        "write_buffer_size": WRITE_BUFFER_MB * mb,
        "max_write_buffer_number": 2,
        "block_cache_size": BLOCK_CACHE_MB * mb,
        "block_cache_compressed_size": mb,
    }
    # Configs, members and closed windows change rarely: the smallest budget RocksDB takes.
    small = {**rocksdb, "write_buffer_size": mb, "block_cache_size": mb}

    def table(name: str, help: str, rarely_written: bool) -> faust.Table:
        return app.Table(
            name,
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            help=help,
            options=small if rarely_written else rocksdb,
        )

    return Tables(**{
        field: table(name, help, field not in BUSY_TABLES)
        for field, (name, help) in TABLES.items()
    })

