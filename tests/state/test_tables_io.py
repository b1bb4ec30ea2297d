"""Table writes outside a Faust stream: the store, the changelog beside it, and the
changelog offset the store records once Kafka acknowledges a change."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from evgrid.state.tables_io import PartitionWriter


class Store(dict):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TopicPartition, int] = {}

    def set_persisted_offset(self, tp: TopicPartition, offset: int) -> None:
        self.persisted[tp] = offset


class Changelog:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, int | None]] = []
        self.callbacks: list[Any] = []

    def send(self, topic, key, value, callback=None, *, partition=None) -> None:
        self.sent.append((topic, key, value, partition))
        self.callbacks.append(callback)


def table(name: str) -> SimpleNamespace:
    return SimpleNamespace(data=Store(), changelog_topic=SimpleNamespace(
        get_topic_name=lambda: f"app-{name}-changelog"))


async def test_a_write_goes_to_the_store_and_its_changelog_and_the_ack_is_recorded() -> None:
    writer = PartitionWriter("src")
    writer.changelog = log = Changelog()
    t = table("station-state")
    writer.put(t, 3, b"S1", b"v1")
    writer.delete(t, 3, b"S1")
    writer.delete(t, 3, b"S2")  # never written: nothing to say
    assert t.data == {}
    assert log.sent == [("app-station-state-changelog", b"S1", b"v1", 3),
                        ("app-station-state-changelog", b"S1", None, 3)]
    loop = asyncio.get_running_loop()
    acked, failed = loop.create_future(), loop.create_future()
    acked.set_result(SimpleNamespace(topic_partition=TopicPartition("c", 3), offset=41))
    failed.set_exception(RuntimeError("the broker went away"))
    log.callbacks[0](acked)
    log.callbacks[1](failed)
    assert t.data.persisted == {TopicPartition("c", 3): 41}


def test_without_a_changelog_only_the_store_changes() -> None:
    writer = PartitionWriter("src")
    t = table("zone-control")
    writer.put(t, 0, b"Z1", b"v")
    assert t.data == {b"Z1": b"v"}
