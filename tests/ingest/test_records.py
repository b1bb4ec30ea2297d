"""The handler consumers (DR signals, the zone stage's station loads) without a broker: each
record to its handler, partitions in turn, a failing record dead-lettered, the loop given
way every few records, and commits only of what was handled and flushed."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import TopicPartition

from evgrid.ingest.handlers import ZoneIngest
from tests.fakes import RecordingPublisher, record, settings


class Publisher(RecordingPublisher):
    """Keeps what is sent; counts drains and the turns given to the control loop."""

    def __init__(self, s) -> None:
        super().__init__(s)
        self.log: list[str] = []

    async def drain(self) -> int:
        self.log.append("drain")
        return 0

    async def control_first(self) -> None:
        self.log.append("control_first")

    async def flush(self) -> None:
        self.log.append("flush")


class Consumer:
    def __init__(self, log: list) -> None:
        self.log = log

    async def commit(self, offsets) -> None:
        self.log.append(("committed", dict(offsets)))


def zone_ingest(handle) -> tuple[ZoneIngest, Publisher]:
    s = settings()
    out = Publisher(s)
    rt = SimpleNamespace(settings=s, publisher=out, stage=SimpleNamespace(on_message=handle))
    ingest = ZoneIngest(rt)  # type: ignore[arg-type]
    ingest.consumer = Consumer(out.log)  # type: ignore[assignment]
    return ingest, out


async def test_station_loads_reach_the_zone_stage_partitions_in_turn() -> None:
    seen: list[tuple[int, int]] = []
    ingest, _out = zone_ingest(lambda r: seen.append((r.partition, r.offset)))
    topic = ingest.settings.topics.station_load
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await ingest._apply({
        p0: [record(topic, "Z1", b"{}", offset=o, partition=0) for o in (5, 6, 7)],
        p1: [record(topic, "Z2", b"{}", offset=o, partition=1) for o in (40, 41)],
    })
    assert seen == [(0, 5), (1, 40), (0, 6), (1, 41), (0, 7)]
    assert ingest.positions == {p0: 8, p1: 42}


async def test_a_record_its_handler_fails_on_is_dead_lettered_and_the_rest_go_on() -> None:
    def handle(r) -> None:
        if r.offset == 1:
            raise ValueError("a bug")
        seen.append(r.offset)

    seen: list[int] = []
    ingest, out = zone_ingest(handle)
    topic = ingest.settings.topics.station_load
    tp = TopicPartition(topic, 0)
    await ingest._apply({tp: [record(topic, "Z1", b"{}", offset=o) for o in range(3)]})
    assert seen == [0, 2]
    (_key, letter), = out.sent(out.deadletters)
    assert (letter["reason"], letter["offset"]) == ("internal_error", 1)
    assert "a bug" in letter["error"]


async def test_the_zone_stage_gives_the_loop_way_every_few_loads_messages() -> None:
    ingest, out = zone_ingest(lambda r: None)
    topic = ingest.settings.topics.station_load
    tp = TopicPartition(topic, 0)
    count = 3 * ingest.yield_every + 1
    await ingest._apply({tp: [record(topic, "Z1", b"{}", offset=o) for o in range(count)]})
    assert out.log.count("control_first") == 3
    assert out.log[-1] == "drain"  # the batch's last outputs leave at once


async def test_only_owned_partitions_are_committed_and_only_after_a_flush() -> None:
    ingest, out = zone_ingest(lambda r: None)
    topic = ingest.settings.topics.station_load
    owned, gone = TopicPartition(topic, 0), TopicPartition(topic, 3)
    ingest.owned = {0}
    ingest.positions = {owned: 12, gone: 7}
    await ingest.checkpoint_and_commit()
    assert out.log == ["flush", ("committed", {owned: 12})]
