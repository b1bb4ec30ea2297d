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
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, Protocol

import faust
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from faust.exceptions import ProducerSendError
from faust.types import Message
from mode import Service

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.logs import broker_connected
from evgrid.models import DeadLetter
from evgrid.outbox import Callback, Outbox, Output
from evgrid.settings import WorkerSettings
from evgrid.state.outbox import Held, OutboxStore
from evgrid.timeutil import from_epoch

log = logging.getLogger(__name__)

#: An output whose send or ack failed is sent again after this long (while the broker is away).
RETRY_S = 1.0
#: A dead letter keeps at most this many bytes of the raw message.
DEADLETTER_RAW_LIMIT = 65_536
#: How long a stopping worker waits for its held outputs to be acknowledged.
STOP_WAIT_S = 5.0
#: The control producer's batch per partition: a zone's commands (about 1.5 kB each with
#: both OCPP versions' payloads) leave in one request, not a dozen per round trip (aiokafka
#: keeps one request in flight per broker and waits for `acks="all"`). Well under the
#: broker's default message.max.bytes (1 MB), which a batch must not pass.
CONTROL_BATCH_BYTES = 256 * 1024
#: An output not acknowledged this long is written to disk (acks take milliseconds: in
#: normal operation nothing is).
KEEP_AFTER_S = 1.0
#: Failures no retry cures.
NEVER_FITS = (MessageSizeTooLargeError, RecordTooLargeError)
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
    """The control loop's own producer, and the outbox its outputs wait in until acked.

    aiokafka keeps one request in flight per broker connection, so on the worker's shared
    producer a command waited behind whatever megabyte of station loads and changelog was
    being sent, ten times as long under load as without. Started before the
    ingest Services and stopped after them (mode stops children in reverse).

    Handing an output over never waits and never fails (`put`): the sender task sends what
    waits, and an output whose send or ack fails waits again and is re-sent, the same bytes,
    after `RETRY_S`, for as long as the broker is away. Only an output Kafka can never take
    (larger than the broker accepts) is dropped, logged and counted."""

    def __init__(self, settings: WorkerSettings, store: OutboxStore | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self.outbox = Outbox(on_superseded=self._superseded, on_dropped=self._forget)
        #: Outputs not acknowledged survive the worker here (None: in memory only).
        self.store = store
        #: A send failed and nothing was acknowledged since: new outputs go to disk at once
        #: (as they do while the worker's broker watch says the broker is away).
        self.away = False
        self._names = f"{time.time_ns():020d}-"
        #: Delivery futures of the outputs in flight (`Publisher.control_first` waits on them).
        self.unacked: set[asyncio.Future] = set()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._dropped = 0  # outbox.dropped already counted
        self._retry: asyncio.TimerHandle | None = None

    async def on_start(self) -> None:
        self._restore()
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=0,
            max_batch_size=CONTROL_BATCH_BYTES,
            max_request_size=s.max_message_bytes + 65_536,
            **s.kafka_client_kwargs())
        await self.producer.start()
        self._wake.set()  # what was handed over before the producer started

    async def on_stop(self) -> None:
        if self.producer is not None:
            try:
                await asyncio.wait_for(self.acked(), STOP_WAIT_S)
            except TimeoutError:  # the broker is away at shutdown
                log.warning("evgrid: stopping with %d control outputs not acknowledged",
                            len(self.outbox))
            await self.producer.stop()
            self.producer = None
        if self.store is not None:
            self.store.close()

    def put(self, topic: str, key: bytes | None, value: bytes, headers: list | None,
            slot: Hashable | None = None, callback: Callback | None = None) -> None:
        """Hold one output until Kafka acknowledges it (never waits, never raises)."""
        out = self.outbox.put(topic, key, value, headers, slot, callback)
        out.born = time.monotonic()
        if self.away or broker_connected() is False:
            self._keep(out)
        self._empty.clear()
        self._wake.set()
        self._gauges()

    async def acked(self) -> None:
        """Every control output handed over so far is acknowledged (waits while the broker
        is away: an offset is never committed ahead of the outputs it caused)."""
        while not self.outbox.empty:
            await self._empty.wait()

    @Service.task
    async def _sender(self) -> None:
        await self.send_waiting()

    async def send_waiting(self) -> None:
        """The sender: whatever waits, to the producer, as soon as it may go."""
        while not self.should_stop:
            await self._wake.wait()
            self._wake.clear()
            if self.producer is None:
                continue
            batch = self.outbox.take()
            for i, out in enumerate(batch):
                try:
                    fut = await self.producer.send(out.topic, out.value, key=out.key,
                                                   headers=out.headers)
                except KafkaError as exc:  # no metadata, or no room: the broker is away
                    self._failed(out, exc)
                    if isinstance(exc, NEVER_FITS):
                        continue  # that one alone is dropped
                    for rest in batch[i + 1:]:
                        self.outbox.failed(rest)
                    break
                self.unacked.add(fut)
                fut.add_done_callback(partial(self._delivered, out))

    def _delivered(self, out: Output, fut: asyncio.Future) -> None:
        self.unacked.discard(fut)
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if exc is not None:
            self._failed(out, exc)
            return
        self.outbox.acked(out)
        self.away = False
        self._forget(out)
        for callback in out.callbacks:
            callback(fut)
        self._settled()

    def _failed(self, out: Output, exc: BaseException) -> None:
        if isinstance(exc, NEVER_FITS):
            log.error("evgrid: %s output dropped, Kafka refuses it: %r", out.topic, exc)
            self.outbox.acked(out)
            self._forget(out)
            metrics.OUTPUTS_DROPPED.inc()
            self._settled()
            return
        self.away = True
        self._keep(out)
        self.outbox.failed(out)
        if self._retry is None:  # one retry for every failure of this round
            self._retry = asyncio.get_running_loop().call_later(RETRY_S, self._again)
        self._gauges()

    # -- on disk ------------------------------------------------------------------------------

    @Service.timer(KEEP_AFTER_S / 2)
    async def _spill(self) -> None:
        """Outputs not acknowledged within `KEEP_AFTER_S` (a send still retrying inside
        aiokafka while the broker is away) go to disk too."""
        if self.store is None or self.outbox.empty:
            return
        due = time.monotonic() - KEEP_AFTER_S
        for out in [*self.outbox.waiting.values(), *self.outbox.in_flight.values()]:
            if out.stored is None and out.born <= due:
                self._keep(out)

    def _keep(self, out: Output) -> None:
        """Write an output the broker has not taken to disk (once)."""
        if self.store is None or out.stored is not None:
            return
        out.stored = f"{self._names}{out.seq:012d}"
        self.store.save(out.stored, Held(out.topic, out.key, out.value, out.headers, out.slot))
        metrics.OUTPUTS_ON_DISK.inc()

    def _forget(self, out: Output) -> None:
        if self.store is not None and out.stored is not None:
            self.store.forget(out.stored)
            out.stored = None
            metrics.OUTPUTS_ON_DISK.dec()

    def _superseded(self, out: Output) -> None:
        metrics.OUTPUTS_SUPERSEDED.labels(topic=out.topic).inc()
        self._forget(out)

    def _restore(self) -> None:
        """What a worker before this one held when it died: sent first, as it was."""
        if self.store is None:
            return
        n = 0
        for name, held in self.store.load():
            out = self.outbox.put(held.topic, held.key, held.value, held.headers, held.slot)
            out.stored = name
            metrics.OUTPUTS_ON_DISK.inc()
            n += 1
        if n:
            log.warning("evgrid: %d control outputs held on disk when the worker stopped; "
                        "sending them first", n)
            self._empty.clear()
            self._gauges()

    def _again(self) -> None:
        self._retry = None
        self._wake.set()

    def _settled(self) -> None:
        if self.outbox.empty:
            self._empty.set()
        elif self.outbox.waiting:
            self._wake.set()  # outputs of a slot that was in flight may go now
        self._gauges()

    def _gauges(self) -> None:
        ob = self.outbox
        metrics.OUTPUTS_WAITING.set(len(ob))
        if ob.dropped > self._dropped:
            metrics.OUTPUTS_DROPPED.inc(ob.dropped - self._dropped)
            log.error("evgrid: %d control outputs dropped beyond the outbox's bound",
                      ob.dropped - self._dropped)
            self._dropped = ob.dropped


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
        #: (topic, key, value, headers, callback, partition); partition None: the key's.
        self.pending: list[tuple[str, bytes | None, bytes | None, list | None,
                                 Callback | None, int | None]] = []
        #: Faust's producer refused the last drain (the broker is away): what it refused
        #: waits in `pending`, and a flush waits for it.
        self.refused = False
        #: The control loop's outputs leave on their own producer once one is linked.
        self.control: ControlLink | None = None
        #: What the control link carries and holds through an outage: decisions and alerts.
        self.control_topics = frozenset({t.commands, t.dr_status, t.compliance_alerts,
                                         t.dr_reports, t.signal_alerts, t.overload_alerts,
                                         t.station_alerts, t.frequency_activations})
        #: The last alerts this worker published, for the dashboard.
        self.recent_alerts: deque[dict] = deque(maxlen=50)
        self._draining: asyncio.Future | None = None

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
        for i, (topic, key, value, headers, callback, partition) in enumerate(rest):
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
        rest = []
        for message in batch:
            topic, key, value, headers, callback, _partition = message
            if topic in self.control_topics:
                control.put(topic, key, value, headers, self._slot(topic, key, value), callback)
            else:
                rest.append(message)
        return rest

    def _slot(self, topic: str, key: bytes | None, value: bytes) -> tuple | None:
        """What a newer output of the same kind replaces while both wait: a station's
        command for one event, an event's status. Reports and alerts are all kept."""
        if topic == self.commands or topic == self.dr_status:
            station_or_zone = None if key is None else key.decode("utf-8", "replace")
            return (topic, station_or_zone, orjson.loads(value).get("signal_id"))
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
