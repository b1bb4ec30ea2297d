"""Where outputs leave: the control loop's on a producer of its own, the rest on Faust's."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from evgrid.publisher import ControlLink, Publisher
from tests.fakes import settings


class Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.args: list[tuple] = []
        self.futures: list[asyncio.Future] = []

    async def send(self, topic, *args, **kwargs) -> asyncio.Future:
        self.sent.append(topic)
        self.args.append((topic, *args))
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def flush(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)


def linked() -> tuple[Publisher, Producer, Producer]:
    """A publisher with Faust's shared producer and a control link: (it, shared, own)."""
    s = settings()
    shared = Producer()
    out = Publisher(SimpleNamespace(producer=shared), s)  # type: ignore[arg-type]
    out.control = ControlLink(s)
    own = Producer()
    out.control.producer = own  # type: ignore[assignment]
    return out, shared, own


async def test_commands_leave_on_the_control_link_and_a_flush_waits_for_their_acks() -> None:
    out, shared, own = linked()
    s = out.settings
    out.send(s.topics.commands, "S1", b"{}")
    out.send(s.topics.dr_status, "Z1", b"{}")
    out.send(s.topics.station_rows, "Z1", b"{}")
    await out.drain()
    assert own.sent == [s.topics.commands, s.topics.dr_status]
    assert shared.sent == [s.topics.station_rows]
    flushed = asyncio.create_task(out.flush())
    await asyncio.sleep(0.01)
    assert not flushed.done()  # the command is not acked yet: no offset may be committed
    for fut in own.futures:
        fut.set_result(None)
    await asyncio.wait_for(flushed, 1.0)
    assert out.control.unacked == set()


async def test_a_message_sent_to_a_partition_leaves_there_and_a_tombstone_as_null() -> None:
    """Station rows go to their zone's partition, not their key's."""
    out, shared, _own = linked()
    rows = out.settings.topics.station_rows
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
    out, shared, own = linked()
    s = out.settings
    order: list[str] = []
    own_send, shared_send = own.send, shared.send

    async def control_send(topic, *args, **kwargs):
        order.append(topic)
        return await own_send(topic, *args, **kwargs)

    async def slow_shared_send(topic, *args, **kwargs):
        await asyncio.sleep(0.01)  # waiting for room in Faust's buffer
        order.append(topic)
        return await shared_send(topic, *args, **kwargs)

    own.send, shared.send = control_send, slow_shared_send  # type: ignore[method-assign]
    for n in range(3):
        out.send(s.topics.station_rows, f"Z{n}", b"{}")
    acked: list[str] = []
    out.send(s.topics.commands, "S1", b"{}", callback=lambda _f: acked.append("S1"))
    assert await out.drain() == 4
    assert order == [s.topics.commands] + [s.topics.station_rows] * 3
    own.futures[0].set_result(None)
    await asyncio.sleep(0)
    assert acked == ["S1"]  # callbacks still follow the acks


async def test_ingestion_yields_until_control_messages_in_flight_are_acked() -> None:
    out, _shared, own = linked()
    s = out.settings
    await out.control_first()  # nothing in flight: one turn of the loop, no wait
    out.send(s.topics.commands, "S1", b"{}")
    await out.drain()
    ingest = asyncio.create_task(out.control_first())
    await asyncio.sleep(0.005)
    assert not ingest.done()  # the command is in flight: ingestion waits
    own.futures[0].set_result(None)
    await asyncio.wait_for(ingest, 1.0)


async def test_a_command_never_acked_holds_ingestion_back_only_briefly() -> None:
    out, _shared, _own = linked()
    out.send(out.settings.topics.commands, "S1", b"{}")
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
    (_topic, key, value, _h, _cb, _partition), = out.pending
    letter = orjson.loads(value)
    assert (key, letter["reason"], letter["offset"]) == (b"S1", "internal_error", 7)
    assert "a bug" in letter["error"]
