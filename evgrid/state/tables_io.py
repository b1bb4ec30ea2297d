"""Reading and writing one partition of a Faust table, whatever its store.

Faust's RocksDB store keeps one database per partition; after an assignment the ingest Service
loads its stations by iterating the partitions it now owns. The in-memory store (unit tests,
`memory://`) has no partitions, so its keys are filtered by the key's partition instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Protocol

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


class Changelog(Protocol):
    """Where a table's changes go to its changelog topic: the worker's publisher (queued,
    handed to the producer in batches, flushed before any input offset is committed)."""

    def send(self, topic: str, key: str | bytes | None, value: bytes | None,
             callback: Callable[[Any], None] | None = None, *,
             partition: int | None = None) -> None: ...


class PartitionWriter:
    """Table writes for one partition from outside a Faust stream (Service, clock).

    With a `changelog`, a write goes to the partition's store and its change to the table's
    changelog through the worker's publisher, straight to the producer in batches: Faust's
    own path (`table[key] = value`) sends each change through its per-message buffer task,
    about 100 µs a change, which at hundreds of thousands of stations per checkpoint holds
    every commit behind it for minutes. Once Kafka acknowledges a change, the store records
    its changelog offset, as Faust does, so a restarted worker recovers from there. Without
    one (the in-memory tables of the unit tests), the store alone."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic
        #: Set by the worker (`Runtime.build`) before any write.
        self.changelog: Changelog | None = None

    def put(self, table: faust.Table, partition: int, key: bytes, value: bytes) -> None:
        with partition_scope(self.source_topic, partition):
            table.data[key] = value
        self._log(table, partition, key, value)

    def delete(self, table: faust.Table, partition: int, key: bytes) -> None:
        with partition_scope(self.source_topic, partition):
            store = table.data
            if store.get(key) is None:
                return
            del store[key]
        self._log(table, partition, key, None)

    def _log(self, table: faust.Table, partition: int, key: bytes, value: bytes | None) -> None:
        if self.changelog is None:
            return
        self.changelog.send(table.changelog_topic.get_topic_name(), key, value,
                            callback=partial(_persisted, table.data), partition=partition)


def _persisted(store: Any, fut: Any) -> None:
    """The store keeps the changelog offset it holds data up to (Faust's recovery starts
    after it)."""
    if fut.cancelled() or fut.exception() is not None:
        return  # re-sent by no one: the next change of the partition records a later offset
    metadata = fut.result()
    store.set_persisted_offset(metadata.topic_partition, metadata.offset)
