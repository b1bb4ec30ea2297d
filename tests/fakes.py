"""Broker-free stand-ins shared by the state, ingest and handler tests: in-memory tables with
Faust's table surface, a recording publisher, and records shaped like Kafka's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from evgrid.publisher import Publisher
from evgrid.settings import WorkerSettings
from evgrid.state.tables_io import partition_of
from evgrid.tables import Tables

PARTITIONS = 4


class MemoryTable(dict):
    """A table as `evgrid.state` uses it: a mapping whose `.data` is the store."""

    @property
    def data(self) -> MemoryTable:
        return self


def memory_tables() -> Tables:
    return Tables(*(MemoryTable() for _ in Tables.__dataclass_fields__))


@dataclass
class Rec:
    """A Kafka record as aiokafka's ConsumerRecord or Faust's Message has it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)
    timestamp: int | None = None  # ms; None: the worker's clock


class RecordingPublisher(Publisher):
    """Publisher that keeps what it would send: (topic, key, decoded value)."""

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__(None, settings)  # type: ignore[arg-type]  (never drains)
        self._next_offset: dict[tuple[str, int], int] = {}

    def sent(self, topic: str) -> list[tuple[str | None, dict]]:
        return [
            (key.decode() if key else None, orjson.loads(value) if value else {})
            for t, key, value, *_rest in self.pending if t == topic
        ]

    def placed(self, topic: str) -> list[tuple[str | None, dict | None, int]]:
        """(key, decoded value or None for a tombstone, the partition it goes to)."""
        return [
            (key.decode() if key else None, orjson.loads(value) if value else None,
             self.where(key, partition))
            for t, key, value, _h, _cb, partition, _signal_id in self.pending if t == topic
        ]

    @staticmethod
    def where(key: bytes | None, partition: int | None) -> int:
        """Where Kafka puts a message: the partition it was sent to, else its key's."""
        if partition is not None:
            return partition
        return partition_of(key.decode(), PARTITIONS) if key else 0

    def take(self, topic: str) -> list[Rec]:
        """The topic's queued messages, taken out of the queue, as the records a consumer
        of the topic fetches: each in its partition, at the next offset there, stamped with
        the time it was taken (Kafka's create time)."""
        taken: list[Rec] = []
        kept = []
        for message in self.pending:
            t, key, value, _h, _cb, partition, _signal_id = message
            if t != topic:
                kept.append(message)
                continue
            tp = (t, self.where(key, partition))
            offset = self._next_offset.get(tp, 0)
            self._next_offset[tp] = offset + 1
            taken.append(Rec(t, tp[1], offset, key, value,
                             timestamp=int(time.time() * 1000)))
        self.pending = kept
        return taken


def settings(**overrides: object) -> WorkerSettings:
    return WorkerSettings(partitions=PARTITIONS, **overrides)


def record(topic: str, key: str | None, value: dict | bytes | None, offset: int = 0,
           partition: int | None = None, timestamp_ms: int | None = None) -> Rec:
    """A record in the partition Kafka's default partitioner gives its key, unless told."""
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    if partition is None:
        partition = partition_of(key, PARTITIONS) if key else 0
    return Rec(topic, partition, offset, key.encode() if key else None, raw,
               timestamp=timestamp_ms)
