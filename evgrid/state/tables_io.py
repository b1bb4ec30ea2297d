"""Reading and writing one partition of a Faust table, whatever its store.

Faust's RocksDB store keeps one database per partition; after an assignment the ingest Service
loads its stations by iterating the partitions it now owns. The in-memory store (unit tests,
`memory://`) has no partitions, so its keys are filtered by the key's partition instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import faust
from aiokafka.partitioner import murmur2

from evgrid.state.scope import partition_scope


def partition_of(key: str | bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as Kafka's Java client, aiokafka and Faust use."""
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


def items_in_partition(
    table: faust.Table, partition: int, partitions: int,
    partition_key: Callable[[bytes], bytes] = lambda key: key,
) -> Iterator[tuple[bytes, bytes]]:
    """`partition_key` gives the part of a key its partition was chosen by (a zone member
    `zone_id|station_id` lives in its zone's partition)."""
    store = table.data
    if hasattr(store, "_db_for_partition"):  # RocksDB: one database per partition
        db = store._dbs.get(partition)
        if db is None:
            return
        for key, value in db.items():
            if value is not None and key != store.offset_key:  # Faust's own bookkeeping
                yield key, value
        return
    for key, value in list(store.items()):
        if value is not None and partition_of(partition_key(key), partitions) == partition:
            yield key, value


class PartitionWriter:
    """Table writes for one partition from outside a Faust stream (Service, clock)."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def put(self, table: faust.Table, partition: int, key: bytes, value: bytes) -> None:
        with partition_scope(self.source_topic, partition):
            table[key] = value

    def delete(self, table: faust.Table, partition: int, key: bytes) -> None:
        with partition_scope(self.source_topic, partition):
            if table.get(key) is not None:
                del table[key]
