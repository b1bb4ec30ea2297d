"""The gateway's outbox while Kafka is away: nothing it took from a charger is lost."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from evgrid.gateway import server
from evgrid.gateway.server import Gateway
from evgrid.settings import GatewaySettings
from tests.integration.harness import wait_for


class Producer:
    def __init__(self) -> None:
        self.refuse: Exception | None = None
        self.refused = 0
        self.sent: list[bytes] = []
        self.futures: list[asyncio.Future] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future:
        if self.refuse is not None:
            self.refused += 1
            raise self.refuse
        self.sent.append(value)
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]


async def test_a_refused_or_unacknowledged_message_is_sent_again(monkeypatch) -> None:
    monkeypatch.setattr(server, "RESEND_S", 0.01)
    gw = Gateway(GatewaySettings())
    producer = Producer()
    gw._producer = producer  # type: ignore[assignment]
    pump = asyncio.create_task(gw._pump())
    try:
        producer.refuse = UnknownTopicOrPartitionError()  # no metadata: the broker is away
        gw._publish("ocpp.meter_values", b"CP-1", b"r1")
        gw._publish("ocpp.commands.outcomes", b"CP-1", b"o1")
        await wait_for(lambda: producer.refused >= 3, 5, "the outbox trying again")
        assert producer.sent == [] and len(gw._outbox) == 2
        producer.refuse = None
        await wait_for(lambda: len(producer.sent) >= 2, 5, "two messages sent", interval=0.005)
        assert producer.sent == [b"r1", b"o1"] and not gw._outbox
        producer.futures[1].set_exception(KafkaTimeoutError())  # its batch expired
        await wait_for(lambda: len(producer.sent) >= 3, 5, "the expired one sent again",
                       interval=0.005)
        assert producer.sent[2] == b"o1"
    finally:
        pump.cancel()
