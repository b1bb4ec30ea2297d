"""Writing a Faust table outside an agent: the partition comes from a stand-in event.

Faust's tables take a write's partition (for RocksDB and the changelog) from the stream event
being processed, and refuse writes without one. The batch ingest Service and the zone clock
write state outside any Faust event, for a partition they know; this is the one place that
bridges that, through Faust's own `current_event` context variable.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from faust.streams import _current_event


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    partition: int


class _Event:
    """What Faust's table and RocksDB store read from an event: `message.topic/partition`."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Message(topic, partition)


@contextlib.contextmanager
def partition_scope(source_topic: str, partition: int) -> Iterator[None]:
    """Table writes inside go to `partition`. `source_topic` must be co-partitioned with the
    tables (Faust checks the partition counts match)."""
    event = _Event(source_topic, partition)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
