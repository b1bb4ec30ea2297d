"""The control loop's own producer, and the outbox its outputs wait in until Kafka
acknowledges them (in memory, and on disk while the broker is away)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable, Iterable
from functools import lru_cache, partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from mode import Service

from evgrid import metrics
from evgrid.logs import broker_connected
from evgrid.outbox import Callback, Outbox, Output
from evgrid.settings import WorkerSettings
from evgrid.state.outbox import Held, OutboxStore

log = logging.getLogger(__name__)

#: An output whose send or ack failed is sent again after this long (while the broker is away).
RETRY_S = 1.0
#: How long a stopping worker waits for its held outputs to be acknowledged.
STOP_WAIT_S = 5.0
#: The control producer's batch per partition, at most (and at most `max_message_bytes`):
#: aiokafka keeps one request in flight per broker and one batch per partition waiting, so
#: what a frequency activation hands over (ten thousand commands of 1.35 kB with both OCPP
#: versions' payloads, 14 MB) leaves in as many round trips as it fills batches of a
#: partition: 256 kB batches over four partitions took about fourteen. Under the broker's
#: default message.max.bytes (1 MiB), which a batch must not pass.
CONTROL_BATCH_BYTES = 896 * 1024
#: An output not acknowledged this long is written to disk (acks take milliseconds: in
#: normal operation nothing is).
KEEP_AFTER_S = 1.0
#: An output larger than this goes to the producer alone, not in a partition's batch (its
#: size is then checked as the producer checks every message).
ALONE_BYTES = 64 * 1024
#: Kafka's default partitioner (the producer's own): a key's partition is the same either way.
_PARTITIONER = DefaultPartitioner()
#: Failures no retry cures.
NEVER_FITS = (MessageSizeTooLargeError, RecordTooLargeError)


@lru_cache(maxsize=65_536)
def _partition(key: bytes, partitions: int) -> int:
    """The producer's own partitioner's choice (murmur2, in Python: 2 µs a key), remembered
    for the stations a frequency activation commands again and again."""
    parts = list(range(partitions))
    return _PARTITIONER(key, parts, parts)


def control_topics(settings: WorkerSettings) -> frozenset[str]:
    """What the control link carries and holds through an outage: decisions and alerts."""
    t = settings.topics
    return frozenset({t.commands, t.dr_status, t.compliance_alerts, t.dr_reports,
                      t.signal_alerts, t.overload_alerts, t.station_alerts,
                      t.frequency_activations})


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
        #: Set while nothing waits to be handed to the producer (`handed_over`).
        self._handed = asyncio.Event()
        self._handed.set()
        self._dropped = 0  # outbox.dropped already counted
        self._retry: asyncio.TimerHandle | None = None

    async def on_start(self) -> None:
        self._restore()
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=0,
            max_batch_size=min(CONTROL_BATCH_BYTES, s.max_message_bytes),
            max_request_size=s.max_message_bytes + 65_536,
            **s.kafka_client_kwargs())
        await self.producer.start()
        self._wake.set()  # what was handed over before the producer started
        self.add_future(self._warm())

    async def _warm(self) -> None:
        """The control topics' metadata, fetched at start: the first decision after start
        does not wait a metadata round trip (a frequency activation's first command is due
        within 50 ms). Nothing fails if the broker is away: a send fetches it then."""
        assert self.producer is not None
        for topic in sorted(control_topics(self.settings)):
            try:
                await self.producer.partitions_for(topic)
            except KafkaError as exc:
                log.debug("evgrid: no metadata for %s yet: %r", topic, exc)
                return

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

    def put(self, outputs: Iterable[tuple[str, bytes | None, bytes, list | None,
                                          Hashable | None, Callback | None]]) -> None:
        """Hold outputs (topic, key, value, headers, slot, callback) until Kafka acknowledges
        them; never waits, never raises. A drain's outputs come in one call (a frequency
        round's zone, a hundred commands): the sender's events are set once for them."""
        away = self.away or broker_connected() is False
        born = time.monotonic()
        put = self.outbox.put
        held = False
        for topic, key, value, headers, slot, callback in outputs:
            out = put(topic, key, value, headers, slot, callback)
            out.born = born
            if away:
                self._keep(out)
            held = True
        if held:
            self._empty.clear()
            self._handed.clear()
            self._wake.set()  # the sender sets the gauges as it takes them

    async def handed_over(self, timeout_s: float) -> None:
        """Returns once nothing handed over waits for the producer (each output is in a
        batch, its timestamp taken), or after `timeout_s` (the broker may be away)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._handed.wait(), timeout_s)

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
            taken = self.outbox.take()
            self._gauges()
            await self._send(taken)
            if not self.outbox.waiting:
                self._handed.set()

    async def _send(self, taken: list[Output]) -> None:
        """Outputs to the producer in one batch per partition, with one delivery future per
        batch: a frequency activation hands over ten thousand commands at once, and a
        future, a partitioner call and an accumulator turn per output cost as much as
        deciding them. An output without a key, or a large one, goes alone. After a failure
        that is not the output's own, the rest wait again."""
        assert self.producer is not None
        batches: dict[tuple[str, int], tuple[BatchBuilder, list[Output]]] = {}
        partitions: dict[str, list[int]] = {}
        for i, out in enumerate(taken):
            try:
                if out.key is None or len(out.value) > ALONE_BYTES:
                    fut = await self.producer.send(out.topic, out.value, key=out.key,
                                                   headers=out.headers)
                    self._track(fut, [out])
                    continue
                parts = partitions.get(out.topic)
                if parts is None:
                    parts = partitions[out.topic] = sorted(
                        await self.producer.partitions_for(out.topic))
                where = (out.topic, parts[_partition(out.key, len(parts))])
                entry = batches.get(where)
                if entry is None:
                    entry = batches[where] = (self.producer.create_batch(), [])
                if entry[0].append(key=out.key, value=out.value, timestamp=None,
                                   headers=out.headers or []) is None:  # full: send it
                    await self._send_batch(where, *entry)
                    entry = batches[where] = (self.producer.create_batch(), [])
                    entry[0].append(key=out.key, value=out.value, timestamp=None,
                                    headers=out.headers or [])
                entry[1].append(out)
            except KafkaError as exc:  # no metadata, or no room: the broker is away
                self._failed(out, exc)
                if isinstance(exc, NEVER_FITS):
                    continue  # that one alone is dropped
                for _batch, outs in batches.values():
                    for held in outs:
                        self.outbox.failed(held)
                for rest in taken[i + 1:]:
                    self.outbox.failed(rest)
                return
        ready = list(batches.items())
        for n, (where, (batch, outs)) in enumerate(ready):
            try:
                await self._send_batch(where, batch, outs)
            except KafkaError as exc:
                for out in outs:
                    self._failed(out, exc)
                for _where, (_batch, rest) in ready[n + 1:]:
                    for out in rest:
                        self.outbox.failed(out)
                return

    async def _send_batch(self, where: tuple[str, int], batch: BatchBuilder,
                          outs: list[Output]) -> None:
        assert self.producer is not None
        batch.close()
        fut = await self.producer.send_batch(batch, where[0], partition=where[1])
        self._track(fut, outs)

    def _track(self, fut: asyncio.Future, outs: list[Output]) -> None:
        self.unacked.add(fut)
        fut.add_done_callback(partial(self._delivered, outs))

    def _delivered(self, outs: list[Output], fut: asyncio.Future) -> None:
        self.unacked.discard(fut)
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if exc is not None:
            for out in outs:
                self._failed(out, exc)
            return
        self.away = False
        for out in outs:
            self.outbox.acked(out)
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
