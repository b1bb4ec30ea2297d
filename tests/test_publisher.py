"""Where outputs leave: the control loop's on a producer of its own, held in its outbox until
acknowledged; the rest on Faust's."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    UnknownTopicOrPartitionError,
)
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import ProducerSendError

from evgrid import control_link
from evgrid.control_link import ControlLink
from evgrid.publisher import Publisher
from tests.fakes import settings


class Batch:
    """aiokafka's BatchBuilder as the control link uses it."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None,
               headers: list) -> object:
        self.messages.append((key, value))
        return object()

    def close(self) -> None:
        pass


class Producer:
    """A producer whose sends the test acks or fails; `refuse` makes `send` itself raise
    (no metadata while the broker is away)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.args: list[tuple] = []
        self.values: list[bytes] = []
        self.futures: list[asyncio.Future] = []
        self.refuse: Exception | None = None

    async def send(self, topic, *args, **kwargs) -> asyncio.Future:
        await asyncio.sleep(0)  # a send awaits (room in the buffer): others run meanwhile
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(topic)
        self.args.append((topic, *args))
        self.values.append(kwargs.get("value", args[0] if args else None)
                           if len(args) < 2 else args[1])
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        if self.refuse is not None:  # known metadata: no wait (aiokafka returns at once)
            raise self.refuse
        return {0, 1, 2}

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future:
        """The control link's way: one future for the batch, each message recorded."""
        await asyncio.sleep(0)
        if self.refuse is not None:
            raise self.refuse
        for key, value in batch.messages:
            self.sent.append(topic)
            self.args.append((topic, value, key, partition))
            self.values.append(value)
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def flush(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)


async def linked() -> tuple[Publisher, Producer, Producer]:
    """A publisher with Faust's shared producer and a running control link: (it, shared,
    own)."""
    s = settings()
    shared = Producer()
    out = Publisher(SimpleNamespace(producer=shared), s)  # type: ignore[arg-type]
    out.control = ControlLink(s)
    own = Producer()
    out.control.producer = own  # type: ignore[assignment]
    sender = asyncio.create_task(out.control.send_waiting())
    _SENDERS.add(sender)
    sender.add_done_callback(_SENDERS.discard)
    return out, shared, own


_SENDERS: set[asyncio.Task] = set()


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_commands_leave_on_the_control_link_and_a_flush_waits_for_their_acks() -> None:
    out, shared, own = await linked()
    s = out.settings
    out.send(s.topics.commands, "S1", b'{"signal_id": "E1"}')
    out.send(s.topics.dr_status, "Z1", b'{"signal_id": "E1"}')
    out.send(s.internal_topics.station_rows, "Z1", b"{}")
    await out.drain()
    await turns()
    assert own.sent == [s.topics.commands, s.topics.dr_status]
    assert shared.sent == [s.internal_topics.station_rows]
    flushed = asyncio.create_task(out.flush())
    await asyncio.sleep(0.01)
    assert not flushed.done()  # the command is not acked yet: no offset may be committed
    for fut in own.futures:
        fut.set_result(None)
    await asyncio.wait_for(flushed, 1.0)
    assert out.control.unacked == set() and out.control.outbox.empty


async def test_an_output_not_acknowledged_is_sent_again_unchanged_until_it_is(
        monkeypatch) -> None:
    monkeypatch.setattr(control_link, "RETRY_S", 0.01)
    out, _shared, own = await linked()
    command = b'{"signal_id": "E1", "command_id": "c1"}'
    out.send(out.settings.topics.commands, "S1", command)
    await out.drain()
    await turns()
    own.futures[0].set_exception(KafkaTimeoutError())  # expired while the broker was away
    own.refuse = UnknownTopicOrPartitionError()  # then no metadata for a while
    await asyncio.sleep(0.05)
    assert len(own.futures) == 1 and len(out.control.outbox) == 1
    flushed = asyncio.create_task(out.flush())
    own.refuse = None  # the broker is back
    while len(own.futures) < 2:
        await asyncio.sleep(0.005)
    assert own.values == [command, command]
    own.futures[1].set_result(None)
    await asyncio.wait_for(flushed, 1.0)


async def test_a_newer_decision_replaces_the_one_waiting_for_the_broker() -> None:
    out, _shared, own = await linked()
    t = out.settings.topics
    own.refuse = UnknownTopicOrPartitionError()
    out.send(t.commands, "S1", b'{"signal_id": "E1", "action": "SET"}')
    out.send(t.dr_reports, "Z1", b'{"signal_id": "E0"}')
    await out.drain()
    await turns()
    out.send(t.commands, "S1", b'{"signal_id": "E1", "action": "CLEAR"}')
    out.send(t.dr_reports, "Z1", b'{"signal_id": "E1"}')
    await out.drain()
    assert len(out.control.outbox) == 3  # the newest decision per station, every report


async def test_faust_producer_refusing_keeps_the_rest_queued_and_never_raises() -> None:
    out, shared, _own = await linked()
    t = out.settings.topics
    shared.refuse = ProducerSendError("Error while sending: UnknownTopicOrPartitionError()")
    out.send(out.station_rows, "Z1", b"a")
    out.send(t.zone_load, "Z1", b"b")
    await out.drain()
    assert [m[2] for m in out.pending] == [b"a", b"b"]
    shared.refuse = None
    await out.drain()
    assert shared.sent == [out.station_rows, t.zone_load] and not out.pending


async def test_an_output_kafka_can_never_take_is_dropped_and_the_others_go_on() -> None:
    out, _shared, own = await linked()
    t = out.settings.topics
    refused = own.send

    async def too_large(topic, *args, **kwargs):
        if kwargs.get("key") == b"BIG":
            raise MessageSizeTooLargeError()
        return await refused(topic, *args, **kwargs)

    own.send = too_large  # type: ignore[method-assign]
    # A large output goes to the producer alone, which checks its size as for any message.
    big = b'{"signal_id": "E1", "pad": "' + b"x" * control_link.ALONE_BYTES + b'"}'
    out.send(t.dr_reports, "BIG", big)
    out.send(t.commands, "S1", b'{"signal_id": "E1"}')
    await out.drain()
    await turns()
    assert own.sent == [t.commands] and len(out.control.outbox) == 1
    own.futures[0].set_result(None)
    await asyncio.wait_for(out.control_acked(), 1.0)


async def test_a_message_sent_to_a_partition_leaves_there_and_a_tombstone_as_null() -> None:
    """Station rows and zone loads go to their zone's partition, not their key's."""
    out, shared, _own = await linked()
    rows = out.settings.internal_topics.station_rows
    out.send(rows, "S1", b"{}", partition=3)
    out.send(rows, "S1", None, partition=1)
    out.send(rows, "S2", b"{}")
    await out.drain()
    # Faust's producer: (topic, key, value, partition, timestamp, headers)
    assert [a[:4] for a in shared.args] == [(rows, b"S1", b"{}", 3), (rows, b"S1", None, 1),
                                            (rows, b"S2", b"{}", None)]


async def test_without_a_control_link_everything_leaves_on_the_shared_producer() -> None:
    s = settings()
    shared = Producer()
    out = Publisher(SimpleNamespace(producer=shared), s)  # type: ignore[arg-type]
    out.send(s.topics.commands, "S1", b"{}")
    await out.drain()
    assert shared.sent == [s.topics.commands]


async def test_control_messages_are_handed_over_before_what_was_queued_ahead_of_them() -> None:
    out, shared, own = await linked()
    s = out.settings
    order: list[str] = []
    own_send, shared_send = own.send_batch, shared.send

    async def control_send(batch, topic, **kwargs):
        order.append(topic)
        return await own_send(batch, topic, **kwargs)

    async def slow_shared_send(topic, *args, **kwargs):
        await asyncio.sleep(0.01)  # waiting for room in Faust's buffer
        order.append(topic)
        return await shared_send(topic, *args, **kwargs)

    own.send_batch, shared.send = control_send, slow_shared_send  # type: ignore[method-assign]
    for n in range(3):
        out.send(s.internal_topics.station_rows, f"Z{n}", b"{}")
    acked: list[str] = []
    out.send(s.topics.commands, "S1", b'{"signal_id": "E1"}',
             callback=lambda _f: acked.append("S1"))
    assert await out.drain() == 4
    assert order == [s.topics.commands] + [s.internal_topics.station_rows] * 3
    own.futures[0].set_result(None)
    await turns()
    assert acked == ["S1"]  # callbacks still follow the acks


async def test_the_zone_clock_hands_over_without_waiting_on_the_broker() -> None:
    out, shared, own = await linked()
    t = out.settings.topics
    shared.refuse = own.refuse = UnknownTopicOrPartitionError()
    out.send(t.commands, "S1", b'{"signal_id": "E1"}')
    out.send(t.zone_load, "Z1", b"{}")
    out.drain_soon()  # synchronous: the command is in the outbox, the rest on a task
    assert len(out.control.outbox) == 1
    await turns()
    assert [m[0] for m in out.pending] == [t.zone_load]


async def test_ingestion_yields_until_control_messages_in_flight_are_acked() -> None:
    out, _shared, own = await linked()
    s = out.settings
    await out.control_first()  # nothing in flight: one turn of the loop, no wait
    out.send(s.topics.commands, "S1", b'{"signal_id": "E1"}')
    await out.drain()
    ingest = asyncio.create_task(out.control_first())
    await asyncio.sleep(0.005)
    assert not ingest.done()  # the command is in flight: ingestion waits
    own.futures[0].set_result(None)
    await asyncio.wait_for(ingest, 1.0)


async def test_a_command_never_acked_holds_ingestion_back_only_briefly() -> None:
    out, _shared, _own = await linked()
    out.send(out.settings.topics.commands, "S1", b'{"signal_id": "E1"}')
    await out.drain()
    await asyncio.wait_for(out.control_first(), 1.0)  # CONTROL_FIRST_S, then ingestion goes on
    assert out.control.unacked  # still in flight


def test_a_handler_that_raises_dead_letters_its_record_as_an_internal_error() -> None:
    from tests.fakes import record

    out = Publisher(SimpleNamespace(producer=Producer()), settings())  # type: ignore[arg-type]
    topic = out.settings.topics.meter_values

    def handle(_record) -> None:
        raise KeyError("a bug")

    out.guarded(handle, record(topic, "S1", b"{}", offset=7))
    (_topic, key, value, _h, _cb, _partition, _signal_id), = out.pending
    letter = orjson.loads(value)
    assert (key, letter["reason"], letter["offset"]) == (b"S1", "internal_error", 7)
    assert "a bug" in letter["error"]


async def test_a_flush_under_load_waits_for_what_was_queued_not_for_an_empty_queue() -> None:
    """Others keep queueing while a flush runs (a commit under load): the flush covers what
    was queued before it and returns."""
    out, shared, _own = await linked()
    rows = out.settings.internal_topics.station_rows
    busy = asyncio.Event()

    async def keep_queueing() -> None:
        while not busy.is_set():
            out.send(rows, "Z1", b"{}")
            await asyncio.sleep(0)

    load = asyncio.create_task(keep_queueing())
    try:
        out.send(rows, "Z0", b"{}")
        await asyncio.wait_for(out.flush(), 2.0)
        assert shared.args[0][:2] == (rows, b"Z0")
    finally:
        busy.set()
        await load


async def test_a_flush_waits_while_the_shared_producer_refuses() -> None:
    out, shared, _own = await linked()
    rows = out.settings.internal_topics.station_rows
    shared.refuse = UnknownTopicOrPartitionError()
    out.send(rows, "Z0", b"{}")
    flushed = asyncio.create_task(out.flush())
    await asyncio.sleep(0.05)
    assert not flushed.done() and out.refused  # the broker is away: the commit waits
    shared.refuse = None
    await asyncio.wait_for(flushed, control_link.RETRY_S + 2.0)
    assert shared.sent == [rows]


async def test_an_output_the_shared_producer_can_never_take_is_dropped_alone() -> None:
    out, shared, _own = await linked()
    rows = out.settings.internal_topics.station_rows
    refusals = [MessageSizeTooLargeError()]

    async def send(topic, *args, **kwargs):
        if refusals:
            raise refusals.pop()
        shared.sent.append(topic)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    shared.send = send  # type: ignore[method-assign]
    out.send(rows, "BIG", b"{}")
    out.send(rows, "Z1", b"{}")
    await asyncio.wait_for(out.flush(), 2.0)  # never retried, never holding the rest
    assert shared.sent == [rows] and not out.pending and not out.refused


async def test_control_outputs_leave_in_one_batch_per_partition_acked_together(
        monkeypatch) -> None:
    """A frequency activation hands over thousands of commands at once: one batch per
    partition, each command in its key's partition (the producer's own partitioner), every
    command's callback once its batch is acknowledged; a batch that fails waits again
    whole."""
    monkeypatch.setattr(control_link, "RETRY_S", 0.01)
    out, _shared, own = await linked()
    t = out.settings.topics
    acked: list[str] = []
    stations = [f"S{i:03d}" for i in range(60)]
    for station_id in stations:
        out.send(t.commands, station_id, b'{"signal_id": "F1"}',
                 callback=lambda _f, s=station_id: acked.append(s))
    await out.drain()
    await turns(5)
    assert len(own.futures) == 3 and len(own.sent) == 60  # the fake's 3 partitions
    for _topic, _value, key, partition in own.args:
        assert partition == DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2])
    first = own.args[0][3]  # the first batch is the first command's partition's
    resent = sum(1 for a in own.args if a[3] == first)
    own.futures[0].set_exception(KafkaTimeoutError())
    own.futures[1].set_result(None)
    own.futures[2].set_result(None)
    while len(own.futures) < 4:  # the failed batch, again
        await asyncio.sleep(0.005)
    own.futures[3].set_result(None)
    await asyncio.wait_for(out.control_acked(), 1.0)
    assert sorted(acked) == stations  # each once
    assert len(own.sent) == 60 + resent
    assert {a[3] for a in own.args[60:]} == {first}
