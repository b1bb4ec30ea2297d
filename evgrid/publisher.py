"""Where handlers' outputs go: the output topics and the dead-letter path.

Handlers are synchronous; what they send is queued here and handed to the Kafka producer once
per batch (`drain`), straight to aiokafka rather than through Faust's per-message buffer task,
which costs ~100 µs a message. Faust flushes the producer before it commits offsets, so a crash
re-processes input whose outputs were not yet acknowledged (at-least-once), and stable
`command_id`s let the gateway drop the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.types import Message
from mode import Service

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.models import DeadLetter
from evgrid.settings import Settings
from evgrid.timeutil import from_epoch

Callback = Callable[[asyncio.Future], Any]
#: The longest ingestion waits, per slice, for control messages in flight (normally acked in
#: a few ms; a broker that does not ack them must not stop ingestion).
CONTROL_FIRST_S = 0.05


class Record(Protocol):
    """A Kafka record as aiokafka's ConsumerRecord or Faust's Message has it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None  # CreateTime in ms (aiokafka's records: the ingest Services)


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> faust.TopicT:
    """A topic of plain bytes: decoding is ours, so a bad message can never crash Faust."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def as_key(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


class ControlLink(Service):
    """The control loop's own producer, for commands and what reports on them.

    aiokafka keeps one request in flight per broker connection, so on the worker's shared
    producer a command waited behind whatever megabyte of station loads and changelog was
    being sent, ten times as long under load as without. Started before the
    ingest Services and stopped after them (mode stops children in reverse)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self.unacked: set[asyncio.Future] = set()

    async def on_start(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=0,
            max_request_size=s.max_message_bytes + 65_536, **s.kafka_client_kwargs())
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            try:
                await self.acked()
            except KafkaError as exc:  # the broker may be gone at shutdown
                logging.getLogger(__name__).warning("evgrid: control link at stop: %r", exc)
            await self.producer.stop()
            self.producer = None

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: list | None) -> asyncio.Future:
        assert self.producer is not None
        fut = await self.producer.send(topic, value, key=key, headers=headers)
        self.unacked.add(fut)
        fut.add_done_callback(self.unacked.discard)
        return fut

    async def acked(self) -> None:
        """Every control message sent so far is acknowledged (or failed: raised)."""
        while self.unacked:
            await asyncio.gather(*list(self.unacked))


class Publisher:
    """One place that knows every output topic."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        t = settings.topics
        self.app = app
        self.settings = settings
        self.commands = t.commands
        self.overload_alerts = t.overload_alerts
        self.compliance_alerts = t.compliance_alerts
        self.dr_status = t.dr_status
        self.dr_reports = t.dr_reports
        self.signal_alerts = t.signal_alerts
        self.station_alerts = t.station_alerts
        self.zone_load = t.zone_load
        self.deadletters = t.deadletter
        self.station_rows = t.station_rows
        #: (topic, key, value, headers, callback, partition); partition None: the key's.
        self.pending: list[tuple[str, bytes | None, bytes | None, list | None,
                                 Callback | None, int | None]] = []
        #: The control loop's outputs leave on their own producer once one is linked.
        self.control: ControlLink | None = None
        self.control_topics = frozenset({t.commands, t.dr_status, t.compliance_alerts,
                                         t.dr_reports, t.signal_alerts})
        #: The last alerts this worker published, for the dashboard.
        self.recent_alerts: deque[dict] = deque(maxlen=50)

    def alert(self, topic: str, key: str, value: bytes, kind: str, detail: str) -> None:
        """Publish an alert and remember it for the dashboard."""
        self.recent_alerts.appendleft(
            {"at": time.time(), "topic": topic, "type": kind, "subject": key, "detail": detail}
        )
        self.send(topic, key, value)

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        callback: Callback | None = None,
        headers: dict[str, bytes] | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message (value None: a tombstone); it leaves with the next `drain()`."""
        hdrs = list(headers.items()) if headers else None
        self.pending.append((topic, as_key(key), value, hdrs, callback, partition))

    async def drain(self) -> int:
        """Hand everything queued to the producers (awaits only for buffer space). Control
        messages go first, so they never wait on Faust's producer for room for what was
        queued before them (one saturated reaction, decided within 6 ms, reached its
        producer at 112 ms)."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, []
        control = self.control if self.control is not None and self.control.producer else None
        rest = []
        for message in batch:
            topic, key, value, headers, callback, _partition = message
            if control is None or topic not in self.control_topics:
                rest.append(message)
                continue
            fut = await control.send(topic, key, value, headers)
            if callback is not None:
                fut.add_done_callback(callback)
        send = self.app.producer.send
        for topic, key, value, headers, callback, partition in rest:
            fut = await send(topic, key, value, partition, None, headers)
            if callback is not None:
                fut.add_done_callback(callback)
        return len(batch)

    async def flush(self) -> None:
        """Everything drained so far is acknowledged: before any input offset is committed.
        (Faust flushes its own producer before its commits; the control link is ours.)"""
        await self.drain()
        await self.app.producer.flush()
        await self.control_acked()

    async def changelog_ebb(self, at_most: int) -> None:
        """Table writes (changelog messages in Faust's producer buffer) down to `at_most`."""
        buffer = self.app.producer.buffer
        deadline = time.monotonic() + 10.0  # a stopping producer drains nothing: don't hang
        while buffer.size > at_most and time.monotonic() < deadline and not buffer.should_stop:
            await asyncio.sleep(0.005)

    async def control_first(self) -> None:
        """Where ingestion yields: a turn of the loop at once, and while control messages are
        in flight, a wait for their acks (at most CONTROL_FIRST_S). Each step of a command's
        round trip — the producer's sender, the broker's response, the ack — needs a turn of
        the loop; behind a saturated ingest's 256-record slices those turns added 80–180 ms
        to a DR reaction that was decided and handed to the producer within 10 ms."""
        await asyncio.sleep(0)
        if self.control is not None and self.control.unacked:
            await asyncio.wait(list(self.control.unacked), timeout=CONTROL_FIRST_S)

    async def control_acked(self) -> None:
        if self.control is not None:
            await self.control.acked()

    def guarded(self, handle: Callable[[Any], None], record: Message | Record) -> None:
        """One record through its handler; an unexpected exception is dead-lettered as
        `internal_error` and logged, so a bug never makes one record a crash loop."""
        try:
            handle(record)
        except Exception as exc:
            logging.getLogger(__name__).exception(
                "evgrid: failed on %s[%s]@%s", record.topic, record.partition, record.offset)
            self.deadletter(record, DecodeError("internal_error", repr(exc)))

    def deadletter(self, message: Message | Record, error: DecodeError) -> None:
        """Reject one input message: publish why, count it, and let processing go on."""
        raw, encoding, truncated = codec.raw_as_text(
            message.value, self.settings.deadletter_raw_limit
        )
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        letter = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            reason=error.reason,
            error=error.error,
            raw=raw,
            raw_encoding=encoding,
            raw_truncated=truncated,
            raw_size=len(message.value or b""),
            ts=from_epoch(time.time()),
        )
        metrics.DEADLETTERS.labels(topic=message.topic, reason=error.reason).inc()
        self.send(self.deadletters, message.key, codec.dumps(letter))
