"""Don't trust producers' keys, nor their partitioners (DESIGN.md).

A message is processed in place only when its key is the id it carries *and* it sits in the
partition Kafka's default partitioner (murmur2) gives that key; otherwise it is re-routed
through a repartition topic, keyed right. librdkafka clients default to CRC32, sarama to
FNV-1a: a right key in the wrong partition breaks co-partitioning just the same.
"""

from __future__ import annotations

from evgrid import metrics
from evgrid.publisher import Publisher, Record
from evgrid.state.tables_io import partition_of

KEY, PARTITION = "key", "partition"


class Router:
    """Checks (key, partition) against the message's own id and re-routes what is misplaced
    through `repartition_topic` (whose messages, placed by us, are trusted); caches the
    expected partition per id."""

    def __init__(self, partitions: int, repartition_topic: str, out: Publisher,
                 cache_limit: int = 1_000_000) -> None:
        self.partitions = partitions
        self.repartition_topic = repartition_topic
        self.out = out
        self.cache_limit = cache_limit
        self._expected: dict[str, int] = {}

    def rerouted(self, record: Record, entity_id: str) -> bool:
        """True when the record was misplaced and has been sent on, keyed by `entity_id`."""
        if record.topic == self.repartition_topic or self.misrouted(
            record.topic, record.key, record.partition, entity_id
        ) is None:
            return False
        self.out.send(self.repartition_topic, entity_id, record.value or b"")
        return True

    def expected_partition(self, entity_id: str) -> int:
        partition = self._expected.get(entity_id)
        if partition is None:
            if len(self._expected) >= self.cache_limit:
                self._expected.clear()
            partition = self._expected[entity_id] = partition_of(entity_id, self.partitions)
        return partition

    def misrouted(
        self, topic: str, key: bytes | None, partition: int, entity_id: str
    ) -> str | None:
        """Why this message must be re-routed (`key` / `partition`), or None; counted."""
        if key is None or key != entity_id.encode():
            reason = KEY
        elif partition != self.expected_partition(entity_id):
            reason = PARTITION
        else:
            return None
        metrics.REPARTITIONED.labels(topic=topic, reason=reason).inc()
        return reason
