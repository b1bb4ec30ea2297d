"""Where handlers' outputs go: the output topics and the dead-letter path.

Handlers are synchronous; what they send is queued here and handed to the Kafka producer once
per batch (`drain`), straight to aiokafka rather than through Faust's per-message buffer task,
which costs ~100 µs a message. Faust flushes the producer before it commits offsets, so a crash
re-processes input whose outputs were not yet acknowledged (at-least-once), and stable
`command_id`s let the gateway drop the duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.types import Message

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.control_link import NEVER_FITS, RETRY_S, ControlLink, control_topics
from evgrid.models import DeadLetter
from evgrid.outbox import Callback
from evgrid.settings import WorkerSettings
from evgrid.timeutil import from_epoch

log = logging.getLogger(__name__)

#: A dead letter keeps at most this many bytes of the raw message.
DEADLETTER_RAW_LIMIT = 65_536
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


class Publisher:
    """One place that knows every output topic."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
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
        self.frequency_activations = t.frequency_activations
        self.flexibility = t.flexibility
        self.deadletters = t.deadletter
        self.station_rows = settings.internal_topics.station_rows
        #: (topic, key, value, headers, callback, partition, signal_id); partition None:
        #: the key's.
        self.pending: list[tuple[str, bytes | None, bytes | None, list | None,
                                 Callback | None, int | None, str | None]] = []
        #: Faust's producer refused the last drain (the broker is away): what it refused
        #: waits in `pending`, and a flush waits for it.
        self.refused = False
        #: The control loop's outputs leave on their own producer once one is linked.
        self.control: ControlLink | None = None
        #: What the control link carries and holds through an outage: decisions and alerts.
        self.control_topics = control_topics(settings)
        #: The last alerts this worker published, for the dashboard.
        self.recent_alerts: deque[dict] = deque(maxlen=50)
        self._draining: asyncio.Future | None = None
        #: Set while no urgent control work is under way (`urgent`).
        self._calm = asyncio.Event()
        self._calm.set()
        self._urgent = 0

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
        signal_id: str | None = None,
    ) -> None:
        """Queue one message (value None: a tombstone); it leaves with the next `drain()`.
        `signal_id`: the signal a command or a status is for, when the caller has it (else
        it is read from the value)."""
        hdrs = list(headers.items()) if headers else None
        self.pending.append((topic, as_key(key), value, hdrs, callback, partition, signal_id))

    async def drain(self) -> int:
        """Control outputs into the control link's outbox (at once, never waiting), the rest
        handed to Faust's producer (awaits only for buffer space). Control outputs go first,
        so they never wait on Faust's producer for room for what was queued before them (one
        saturated reaction, decided within 6 ms, reached its producer at 112 ms). What Faust's
        producer refuses while the broker is away stays queued for the next drain; nothing
        raises to the caller."""
        if not self.pending:
            self.refused = False
            return 0
        batch, self.pending = self.pending, []
        rest = self._to_outbox(batch)
        send = self.app.producer.send
        for i, (topic, key, value, headers, callback, partition, _) in enumerate(rest):
            try:
                fut = await send(topic, key, value, partition, None, headers)
            except NEVER_FITS as exc:  # no retry cures it: that one alone is dropped
                log.error("evgrid: %s output dropped, Kafka refuses it: %r", topic, exc)
                metrics.OUTPUTS_DROPPED.inc()
                continue
            except (KafkaError, ProducerSendError) as exc:  # the broker is away (Faust
                log.debug("evgrid: output waits for the broker: %r", exc)  # wraps aiokafka's)
                self.pending[:0] = rest[i:]
                self.refused = True
                break
            if callback is not None:
                fut.add_done_callback(callback)
        else:
            self.refused = False
        return len(batch)

    def _to_outbox(self, batch: list) -> list:
        """The control outputs of `batch` into the outbox; returns the others."""
        control = self.control
        if control is None:
            return batch
        rest, held = [], []
        for message in batch:
            topic, key, value, headers, callback, _partition, signal_id = message
            if topic in self.control_topics:
                held.append((topic, key, value, headers,
                             self._slot(topic, key, value, signal_id), callback))
            else:
                rest.append(message)
        control.put(held)
        return rest

    def _slot(self, topic: str, key: bytes | None, value: bytes,
              signal_id: str | None) -> tuple | None:
        """What a newer output of the same kind replaces while both wait: a station's
        command for one event, an event's status. Reports and alerts are all kept."""
        if topic == self.commands or topic == self.dr_status:
            station_or_zone = None if key is None else key.decode("utf-8", "replace")
            if signal_id is None:
                signal_id = orjson.loads(value).get("signal_id")
            return (topic, station_or_zone, signal_id)
        return None

    def drain_soon(self) -> None:
        """For the zone clock, which must never wait on the broker: control outputs into the
        outbox now, the rest drained on a task of its own (one at a time)."""
        self.pending = self._to_outbox(self.pending)
        if self.pending and (self._draining is None or self._draining.done()):
            self._draining = asyncio.ensure_future(self.drain())

    async def flush(self) -> None:
        """Everything drained so far is acknowledged: before any input offset is committed.
        (Faust flushes its own producer before its commits; the control link is ours.) While
        the broker is away this waits: commits wait with it."""
        await self.drain()
        # Only while the producer refuses: under load, others queue more all the time, and
        # waiting for an empty queue would hold every commit back for as long as it lasts.
        while self.refused:
            await asyncio.sleep(RETRY_S)
            await self.drain()
        await self.app.producer.flush()
        await self.control_acked()

    async def control_first(self) -> None:
        """Where ingestion yields: a turn of the loop at once, a wait while urgent control work
        is under way (`urgent`), and while control messages are in flight, a wait for their
        acks (at most CONTROL_FIRST_S). Each step of a command's
        round trip — the producer's sender, the broker's response, the ack — needs a turn of
        the loop; behind a saturated ingest's 256-record slices those turns added 80–180 ms
        to a DR reaction that was decided and handed to the producer within 10 ms."""
        await asyncio.sleep(0)
        await self.calm()
        if self.control is not None and self.control.unacked:
            await asyncio.wait(list(self.control.unacked), timeout=CONTROL_FIRST_S)

    async def calm(self) -> None:
        """Returns once no urgent control work is under way (`urgent`)."""
        await self._calm.wait()

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """Control work that goes before every input (a frequency activation of a whole
        area, zone after zone): ingestion waits in `control_first` until it is done, and
        the zone clock skips its turns. The work still yields to the loop between zones, so
        each zone's commands leave while the next is decided."""
        self._urgent += 1
        self._calm.clear()
        try:
            yield
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._calm.set()

    @property
    def busy(self) -> bool:
        """Urgent control work is under way (`urgent`)."""
        return self._urgent > 0

    async def control_handed_over(self, timeout_s: float) -> None:
        """Every control output so far is in the control producer's batches (at most
        `timeout_s`)."""
        if self.control is not None:
            await self.control.handed_over(timeout_s)

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
            message.value, DEADLETTER_RAW_LIMIT
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
