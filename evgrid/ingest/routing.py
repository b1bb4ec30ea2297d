"""The one input path: topic → model → handler, with the decode, dead-letter and re-route
rules written once.

Every record any consumer of the worker fetches goes through `InputPath.dispatch`: its topic's
`Route` says how to decode it, whose id it carries and which handler takes it. A record that
does not decode is dead-lettered with its reason; one whose key or partition is not its own
id's is re-routed; everything else reaches its handler as a typed message.

Don't trust producers' keys, nor their partitioners: a message is processed in place only when
its key is the id it carries *and* it sits in the partition Kafka's default partitioner
(murmur2) gives that key. librdkafka clients default to CRC32, sarama to FNV-1a: a right key in
the wrong partition breaks co-partitioning just the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter

from evgrid import codec, metrics
from evgrid.codec import Checked, DecodeError
from evgrid.publisher import Publisher, Record
from evgrid.state.tables_io import partition_of

KEY, PARTITION = "key", "partition"

#: A handler takes the decoded message (None for a tombstone) and the record it came in.
Handler = Callable[[Any, Record], None]


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
        self.out.send(self.repartition_topic, entity_id, record.value)
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


@dataclass(frozen=True, slots=True)
class Route:
    """What one topic carries and who takes it.

    `entity_id` names the id a message must be keyed and partitioned by; with a `router`, a
    misplaced message goes through the router's repartition topic (which routes to the same
    `Route`, and is trusted). `tombstones`: a null value is a removal of the entity its key
    names, handed over as None. `skip`: records not worth decoding (e.g. too old to matter).
    `model` is a model, a tagged union's adapter, or a model with a hand check
    (`codec.Checked`). `deadletter_when`: for a topic every worker reads whole, whether this
    worker is the one that dead-letters a bad record (the others skip it)."""

    model: type[BaseModel] | TypeAdapter[Any] | Checked[Any, Any]
    handle: Handler
    entity_id: Callable[[Any], str] | None = None
    router: Router | None = None
    tombstones: bool = False
    skip: Callable[[Record], bool] | None = None
    deadletter_when: Callable[[Record], bool] | None = None
    #: The model's decode function, chosen once (not per record).
    decode: codec.Decoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decode", codec.decoder_for(self.model))


class InputPath:
    """The route table of one worker: `dispatch` is all a consumer calls."""

    def __init__(self, out: Publisher, max_message_bytes: int) -> None:
        self.out = out
        self.max_message_bytes = max_message_bytes
        self.routes: dict[str, Route] = {}

    def add(self, topics: Iterable[str], route: Route) -> None:
        for topic in topics:
            self.routes[topic] = route

    def dispatch(self, record: Record) -> None:
        route = self.routes[record.topic]
        if route.skip is not None and route.skip(record):
            return
        if route.tombstones and not record.value:
            self._tombstone(route, record)
            return
        try:
            message = route.decode(record.value, self.max_message_bytes)
        except DecodeError as err:
            if route.deadletter_when is None or route.deadletter_when(record):
                self.out.deadletter(record, err)
            return
        if route.router is not None and route.entity_id is not None and \
                route.router.rerouted(record, route.entity_id(message)):
            return
        route.handle(message, record)

    def _tombstone(self, route: Route, record: Record) -> None:
        if not record.key:
            self.out.deadletter(record, DecodeError(
                "tombstone_without_key", "a tombstone must carry its id as key"))
            return
        entity_id = record.key.decode("utf-8", "replace")
        if route.router is not None and route.router.rerouted(record, entity_id):
            return
        route.handle(None, record)
