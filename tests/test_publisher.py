"""Where outputs leave: the control loop's on a producer of its own, the rest on Faust's."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from evgrid.publisher import ControlLink, Publisher
from tests.fakes import settings


class Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.futures: list[asyncio.Future] = []

    async def send(self, topic, *args, **kwargs) -> asyncio.Future:
        self.sent.append(topic)
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def flush(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)


async def test_commands_leave_on_the_control_link_and_a_flush_waits_for_their_acks() -> None:
    s = settings()
    shared = Producer()
    out = Publisher(SimpleNamespace(producer=shared), s)  # type: ignore[arg-type]
    out.control = ControlLink(s)
    own = Producer()
    out.control.producer = own  # type: ignore[assignment]
    out.send(s.topics.commands, "S1", b"{}")
    out.send(s.topics.dr_status, "Z1", b"{}")
    out.send(s.topics.station_load, "Z1", b"{}")
    await out.drain()
    assert own.sent == [s.topics.commands, s.topics.dr_status]
    assert shared.sent == [s.topics.station_load]
    flushed = asyncio.create_task(out.flush())
    await asyncio.sleep(0.01)
    assert not flushed.done()  # the command is not acked yet: no offset may be committed
    for fut in own.futures:
        fut.set_result(None)
    await asyncio.wait_for(flushed, 1.0)
    assert out.control.unacked == set()


async def test_without_a_control_link_everything_leaves_on_the_shared_producer() -> None:
    s = settings()
    shared = Producer()
    out = Publisher(SimpleNamespace(producer=shared), s)  # type: ignore[arg-type]
    out.send(s.topics.commands, "S1", b"{}")
    await out.drain()
    assert shared.sent == [s.topics.commands]
