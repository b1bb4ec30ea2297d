"""The input path and the record-at-a-time consumers without a broker: decode, dead letters,
re-routing and tombstones written once for every topic; each record to the input path,
partitions in turn, a failing record dead-lettered, the loop given way every few records,
commits only of what was handled and flushed; and the station rows of a partition new to
the zone side read back from its beginning before its zones warm."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from evgrid import metrics
from evgrid.core.types import Tunables
from evgrid.ingest.records import RowIngest, StationConfigIngest
from evgrid.ingest.routing import InputPath, Route, Router
from evgrid.models import StationZone
from evgrid.models.internal import StationRowMessage
from evgrid.state.tables_io import partition_of
from evgrid.state.zones import ZoneStore
from tests.fakes import PARTITIONS, Rec, RecordingPublisher, memory_tables, record, settings


class Publisher(RecordingPublisher):
    """Keeps what is sent; counts drains and the turns given to the control loop."""

    def __init__(self, s) -> None:
        super().__init__(s)
        self.log: list[Any] = []

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


# -- the input path ------------------------------------------------------------------------

MAPPING = {"station_id": "S1", "zone_id": "Z1", "max_station_kw": 50.0,
           "contract_max_kw": 50.0}


class Path:
    """An input path of two routes: zone mappings (re-routed, tombstones) and station rows
    (trusted, tombstones); every message a handler gets is kept in `handled`."""

    def __init__(self) -> None:
        self.settings = settings()
        self.t = self.settings.topics
        self.i = self.settings.internal_topics
        self.out = RecordingPublisher(self.settings)
        self.handled: list[tuple[Any, Rec]] = []
        self.path = InputPath(self.out, self.settings.max_message_bytes)
        self.path.add((self.t.station_zones, self.i.station_zones_repartition), Route(
            StationZone, self.handle, lambda m: m.station_id,
            Router(PARTITIONS, self.i.station_zones_repartition, self.out), tombstones=True))
        self.path.add((self.i.station_rows,), Route(StationRowMessage, self.handle,
                                                    tombstones=True))

    def handle(self, message: Any, rec: Rec) -> None:
        self.handled.append((message, rec))

    def letters(self) -> list[tuple[str, str]]:
        return [(v["source_topic"], v["reason"]) for _k, v in self.out.sent(self.t.deadletter)]


def test_a_message_reaches_its_handler_typed_with_its_record() -> None:
    p = Path()
    rec = record(p.t.station_zones, "S1", MAPPING, offset=3)
    p.path.dispatch(rec)
    (message, handled_rec), = p.handled
    assert isinstance(message, StationZone) and message.zone_id == "Z1"
    assert handled_rec is rec and p.out.pending == []


def test_what_does_not_decode_is_dead_lettered_with_its_reason() -> None:
    p = Path()
    p.path.dispatch(record(p.t.station_zones, "S1", b"{not json", offset=1))
    p.path.dispatch(record(p.t.station_zones, "S1", {**MAPPING, "max_station_kw": -1.0}))
    p.path.dispatch(record(p.i.station_rows, "S1", b"[]"))
    assert p.handled == []
    assert p.letters() == [(p.t.station_zones, "not_json"),
                           (p.t.station_zones, "max_station_kw:greater_than_equal"),
                           (p.i.station_rows, "not_object")]
    first = p.out.sent(p.t.deadletter)[0][1]
    assert (first["offset"], first["raw"]) == (1, "{not json")


def test_a_misrouted_message_is_rerouted_keyed_by_its_id_and_taken_when_it_comes_back() -> None:
    p = Path()
    wrong = (partition_of("S1", PARTITIONS) + 1) % PARTITIONS
    before = metrics.REPARTITIONED.labels(topic=p.t.station_zones, reason="key")._value.get()
    p.path.dispatch(record(p.t.station_zones, "not-S1", MAPPING))
    p.path.dispatch(record(p.t.station_zones, "S1", MAPPING, partition=wrong))
    assert p.handled == []
    assert metrics.REPARTITIONED.labels(topic=p.t.station_zones,
                                        reason="key")._value.get() == before + 1
    rerouted = p.out.take(p.i.station_zones_repartition)
    assert [(r.key, r.partition) for r in rerouted] == [
        (b"S1", partition_of("S1", PARTITIONS))] * 2
    for rec in rerouted:  # the repartition topic is ours: trusted
        p.path.dispatch(rec)
    assert [m.station_id for m, _r in p.handled] == ["S1", "S1"]
    p.path.dispatch(record(p.i.station_zones_repartition, "S1", MAPPING, partition=wrong))
    assert len(p.handled) == 3 and p.out.pending == []


def test_a_tombstone_reaches_its_handler_as_none_or_is_rerouted_like_any_message() -> None:
    p = Path()
    rec = record(p.t.station_zones, "S1", None)
    p.path.dispatch(rec)
    assert p.handled == [(None, rec)]
    wrong = (partition_of("S1", PARTITIONS) + 1) % PARTITIONS
    p.path.dispatch(record(p.t.station_zones, "S1", None, partition=wrong))
    assert p.out.placed(p.i.station_zones_repartition) == [
        ("S1", None, partition_of("S1", PARTITIONS))]
    # A station row sits in its zone's partition, not its key's: never re-routed.
    row = record(p.i.station_rows, "S1", None, partition=wrong)
    p.path.dispatch(row)
    assert p.handled[-1] == (None, row) and len(p.handled) == 2


def test_a_tombstone_without_key_is_dead_lettered() -> None:
    p = Path()
    p.path.dispatch(record(p.t.station_zones, None, None))
    p.path.dispatch(record(p.i.station_rows, None, b""))
    assert p.handled == []
    assert p.letters() == [(p.t.station_zones, "tombstone_without_key"),
                           (p.i.station_rows, "tombstone_without_key")]


def test_a_null_value_where_no_tombstone_is_expected_is_dead_lettered() -> None:
    s = settings()
    out = RecordingPublisher(s)
    path = InputPath(out, s.max_message_bytes)
    handled: list = []
    path.add((s.topics.outcomes,), Route(StationZone, lambda m, r: handled.append(m)))
    path.dispatch(record(s.topics.outcomes, "S1", None))
    assert handled == []
    assert [v["reason"] for _k, v in out.sent(s.topics.deadletter)] == ["empty"]


# -- the record-at-a-time consumers ---------------------------------------------------------

def config_ingest(dispatch) -> tuple[StationConfigIngest, Publisher]:
    s = settings()
    out = Publisher(s)
    ingest = StationConfigIngest(s, out, dispatch)
    ingest.consumer = Consumer(out.log)  # type: ignore[assignment]
    return ingest, out


async def test_records_reach_the_input_path_partitions_in_turn() -> None:
    seen: list[tuple[int, int]] = []
    ingest, _out = config_ingest(lambda r: seen.append((r.partition, r.offset)))
    topic = ingest.settings.topics.station_zones
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await ingest._apply({
        p0: [record(topic, "S1", b"{}", offset=o, partition=0) for o in (5, 6, 7)],
        p1: [record(topic, "S2", b"{}", offset=o, partition=1) for o in (40, 41)],
    })
    assert seen == [(0, 5), (1, 40), (0, 6), (1, 41), (0, 7)]
    assert ingest.positions == {p0: 8, p1: 42}


async def test_a_record_its_handler_fails_on_is_dead_lettered_and_the_rest_go_on() -> None:
    def dispatch(r) -> None:
        if r.offset == 1:
            raise ValueError("a bug")
        seen.append(r.offset)

    seen: list[int] = []
    ingest, out = config_ingest(dispatch)
    topic = ingest.settings.topics.station_zones
    tp = TopicPartition(topic, 0)
    await ingest._apply({tp: [record(topic, "S1", b"{}", offset=o) for o in range(3)]})
    assert seen == [0, 2]
    (_key, letter), = out.sent(out.deadletters)
    assert (letter["reason"], letter["offset"]) == ("internal_error", 1)
    assert "a bug" in letter["error"]


async def test_the_loop_is_given_way_every_few_records() -> None:
    ingest, out = config_ingest(lambda r: None)
    topic = ingest.settings.topics.station_zones
    tp = TopicPartition(topic, 0)
    count = 3 * ingest.yield_every + 1
    await ingest._apply({tp: [record(topic, "S1", b"{}", offset=o) for o in range(count)]})
    assert out.log.count("control_first") == 3
    assert out.log[-1] == "drain"  # the batch's last outputs leave at once


async def test_only_owned_partitions_are_committed_and_only_after_a_flush() -> None:
    ingest, out = config_ingest(lambda r: None)
    topic = ingest.settings.topics.station_zones
    owned, gone = TopicPartition(topic, 0), TopicPartition(topic, 3)
    ingest.owned = {0}
    ingest.positions = {owned: 12, gone: 7}
    await ingest.checkpoint_and_commit()
    assert out.log == ["flush", ("committed", {owned: 12})]


# -- reading the station rows back ---------------------------------------------------------

class RowsLog:
    """The station-rows topic as the rows consumer sees it: compacted below `beginning`,
    written up to `end` (or `ends[tp]`); where it was told to seek and where it has read
    to."""

    def __init__(self, beginning: int, end: int) -> None:
        self.beginning, self.end = beginning, end
        self.ends: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []
        self.seeks: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}

    def assign(self, tps) -> None:
        self.assigned = list(tps)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp) -> int:
        return self.ends.get(tp, self.end)

    def seek(self, tp, offset) -> None:
        self.seeks[tp] = self.positions[tp] = offset

    async def end_offsets(self, tps):
        return {tp: self.highwater(tp) for tp in tps}

    async def beginning_offsets(self, tps):
        return {tp: self.beginning for tp in tps}

    async def position(self, tp) -> int:
        return self.positions[tp]

    async def committed(self, tp):
        raise AssertionError("the rows consumer commits nothing and reads no commit")


async def test_a_partition_new_to_the_zone_side_is_read_back_before_its_zones_warm() -> None:
    """Partition 1 was owned, lost and regained between two of the consumer's assignments:
    its rows are read again from the beginning; partition 0 stayed and keeps its place.
    The zones warm when the end seen at assignment is reached, not a later one."""
    s = settings()
    out = Publisher(s)
    zones = ZoneStore(memory_tables(), Tunables(), PARTITIONS, s.internal_topics.station_rows)
    loaded: list[int] = []
    handled: list[Rec] = []
    ingest = RowIngest(s, out, handled.append, zones, loaded.append)
    log = RowsLog(beginning=3, end=10)
    ingest.consumer = log  # type: ignore[assignment]
    tp0, tp1 = (TopicPartition(s.internal_topics.station_rows, p) for p in (0, 1))
    ingest.owned = {0, 1}
    ingest.positions = {tp0: 42, tp1: 7}
    log.ends[tp0] = 42  # read to its end
    zones.keep_only({0, 1}, 0.0)
    zones.loaded(0)
    zones.loaded(1)
    zones.keep_only({0}, 0.0)  # lost...
    zones.keep_only({0, 1}, 0.0)  # ...and regained before the consumer took either up
    assert zones.loading == {1}

    ingest.on_assigned({0, 1})
    await ingest._apply_assignment()
    assert sorted(log.assigned) == [tp0, tp1]
    assert log.seeks == {tp0: 42, tp1: 3}
    assert ingest.targets == {tp1: 10}
    log.end = 15  # rows written after the assignment: not waited for

    async def read(upto: int) -> None:
        rows = [record(tp1.topic, "S1", b"{}", offset=o, partition=1)
                for o in range(log.positions[tp1], upto)]
        await ingest._apply({tp1: rows})
        log.positions[tp1] = upto
        await ingest.after_fetch(True)

    await read(9)
    assert loaded == [] and metrics.ZONE_PARTITIONS_LOADING._value.get() == 1
    assert metrics.ZONE_ROWS_LAG._value.get() == 15 - 9
    await read(10)
    assert loaded == [1] and ingest.targets == {}
    assert metrics.ZONE_PARTITIONS_LOADING._value.get() == 0
    assert [(r.partition, r.offset) for r in handled] == [(1, o) for o in range(3, 10)]
    zones.loaded(1)
    await read(15)
    assert loaded == [1]  # told once
    assert metrics.ZONE_ROWS_LAG._value.get() == 0


async def test_a_partition_the_zone_side_keeps_is_not_read_again() -> None:
    s = settings()
    out = Publisher(s)
    zones = ZoneStore(memory_tables(), Tunables(), PARTITIONS, s.internal_topics.station_rows)
    loaded: list[int] = []
    ingest = RowIngest(s, out, lambda r: None, zones, loaded.append)
    log = RowsLog(beginning=0, end=10)
    ingest.consumer = log  # type: ignore[assignment]
    tp0, tp2 = (TopicPartition(s.internal_topics.station_rows, p) for p in (0, 2))
    zones.keep_only({0}, 0.0)
    ingest.on_assigned({0})
    await ingest._apply_assignment()
    assert log.seeks == {tp0: 0} and ingest.targets == {tp0: 10}
    await ingest._apply({tp0: [record(tp0.topic, "S1", b"{}", offset=o, partition=0)
                               for o in range(10)]})
    log.positions[tp0] = 10
    await ingest.after_fetch(True)
    assert loaded == [0]
    zones.loaded(0)
    zones.keep_only({0, 2}, 0.0)  # a rebalance that adds partition 2
    log.end = 20
    ingest.on_assigned({0, 2})
    await ingest._apply_assignment()
    assert log.seeks == {tp0: 10, tp2: 0} and ingest.targets == {tp2: 20}
