"""The station side without a broker, fed through the worker's route table: decode → core →
a station's row in its zone's partition when its mapping or outcome changes, tombstones where
it leaves, its changed readings coalesced into one loads record per zone, dead letters,
re-routing by key and by partition, and replay from a checkpoint that counts nothing twice."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from evgrid import metrics
from evgrid.core.types import Tunables
from evgrid.handlers.stations import StationSide
from evgrid.models.internal import loads_key
from evgrid.publisher import Publisher
from evgrid.runtime import input_path
from evgrid.state.stations import StationStore
from evgrid.state.tables_io import partition_of
from evgrid.timeutil import iso
from tests.fakes import PARTITIONS, RecordingPublisher, memory_tables, record, settings

METER = "ocpp.meter_values"


def reading(station_id: str, kw: float, ts: float, connector_id: int = 1) -> dict:
    return {"station_id": station_id, "connector_id": connector_id, "session_id": "s",
            "connector_type": "CCS", "power_kw": kw, "event_ts": ts * 1000}


def zone_in(partition: int, avoid: str = "") -> str:
    """A zone id of `partition` (other than `avoid`)."""
    return next(z for z in (f"Z{i}" for i in range(100))
                if partition_of(z, PARTITIONS) == partition and z != avoid)


class Side:
    """One worker's station side; the zone side's handlers are not part of it. `out`: a
    publisher of the caller's (default: one that keeps what it would send)."""

    def __init__(self, tables=None, out: Publisher | None = None) -> None:
        self.settings = settings()
        self.t = self.settings.topics
        self.i = self.settings.internal_topics
        self.out = out or RecordingPublisher(self.settings)
        self.store = StationStore(tables or memory_tables(), Tunables(), PARTITIONS,
                                  self.t.station_zones)
        self.side = StationSide(self.settings, self.store, self.out)
        unused = SimpleNamespace(on_picture=None, on_signal=None)
        self.inputs = input_path(self.settings, self.out, self.side, unused, unused)

    def map(self, station_id: str, zone_id: str | None) -> None:
        self.inputs.dispatch(record(self.t.station_zones, station_id, None if zone_id is None
                                    else {"station_id": station_id, "zone_id": zone_id,
                                          "max_station_kw": 150.0, "contract_max_kw": 150.0}))

    def feed(self, *records) -> None:
        for r in records:
            self.inputs.dispatch(r)
        self.side.flush_loads()

    def rows(self) -> list[tuple[str | None, dict | None, int]]:
        """Everything queued on the station-rows topic: rows, tombstones, loads records."""
        return self.out.placed(self.i.station_rows)

    def loads(self) -> list[tuple[str, dict[str, list], int]]:
        """The loads records queued: (key, each listed station's connectors, partition)."""
        return [(key, {s["station_id"]: s["connectors"] for s in value["stations"]}, p)
                for key, value, p in self.rows() if value and value["kind"] == "loads"]


def test_readings_of_one_batch_reach_each_zone_as_one_loads_record() -> None:
    side = Side()
    now = time.time()
    za, zb = zone_in(0), zone_in(1)
    for i in range(6):
        side.map(f"S{i}", za if i < 4 else zb)
    side.out.pending.clear()
    side.feed(*(record(METER, f"S{i}", reading(f"S{i}", 10.0 + i + step, now + step),
                       offset=2 * i + step)
                for i in range(6) for step in (0, 1)))
    records = side.rows()
    assert [(key, value["kind"], value["zone_id"], p) for key, value, p in records] == [
        (loads_key(za), "loads", za, 0), (loads_key(zb), "loads", zb, 1)]
    for key, stations, _p in side.loads():
        ids = [f"S{i}" for i in (range(4) if key == loads_key(za) else range(4, 6))]
        assert sorted(stations) == ids
        for station_id, connectors in stations.items():
            i = int(station_id[1:])
            assert [c[:3] for c in connectors] == [[1, "CCS", 10.0 + i + 1]]  # the newest
    assert side.side.flush_loads() == 0  # sent: nothing changed since


def test_a_steady_reading_is_not_forwarded_again_within_the_heartbeat() -> None:
    side = Side()
    now = time.time()
    side.map("S1", "ZA")
    side.feed(record(METER, "S1", reading("S1", 10.0, now - 2)))
    side.out.pending.clear()
    side.feed(record(METER, "S1", reading("S1", 10.01, now - 1), offset=1))
    assert side.rows() == []
    side.feed(record(METER, "S1", reading("S1", 12.0, now), offset=2))
    assert [(key, list(stations)) for key, stations, _p in side.loads()] == [
        (loads_key("ZA"), ["S1"])]


def test_a_station_over_its_contract_alerts_once_and_clears_once_back_under() -> None:
    """Contract 150 kW (2 % hysteresis): over it on two connectors raises; inside the
    hysteresis band and at the limit nothing; under the band clears. A stale connector's
    last reading counts 0 kW, however high it was."""
    side = Side()
    now = time.time()
    side.map("S1", "ZA")
    sent = [(80.0, 1, now - 240), (60.0, 2, now - 3), (100.0, 2, now - 2), (148.0, 2, now - 1),
            (150.0, 2, now)]
    ms = int((now - 240) * 1000)
    for offset, (kw, connector_id, ts) in enumerate(sent):
        arrival = ms if offset == 0 else int(ts * 1000)  # the first is stale by now
        side.feed(record(METER, "S1", reading("S1", kw, ts, connector_id), offset=offset,
                         timestamp_ms=arrival))
    alerts = [(v["alert_type"], v["total_power_kw"])
              for _k, v in side.out.sent(side.t.overload_alerts)]
    assert alerts == []  # 80 kW went stale: 60, 100, 148 and 150 alone never pass 150
    side.feed(record(METER, "S1", reading("S1", 10.0, now + 0.5, 2), offset=10),
              record(METER, "S1", reading("S1", 140.5, now + 1, 1), offset=11),
              record(METER, "S1", reading("S1", 8.0, now + 2, 2), offset=12),
              record(METER, "S1", reading("S1", 138.0, now + 3, 1), offset=13),
              record(METER, "S1", reading("S1", 135.0, now + 4, 1), offset=14))
    alerts = [(v["alert_type"], v["total_power_kw"])
              for _k, v in side.out.sent(side.t.overload_alerts)]
    assert alerts == [("CONTRACT_OVERLOAD", 150.5), ("CONTRACT_OVERLOAD_CLEARED", 146.0)]


def test_a_reading_of_an_unmapped_station_is_kept_but_reaches_no_zone() -> None:
    side = Side()
    side.feed(record(METER, "S1", reading("S1", 10.0, time.time())))
    assert side.rows() == []
    assert side.store.get("S1").state.connectors[1].power_kw == 10.0
    assert side.side.unmapped == {"S1"}
    side.map("S1", "ZA")  # mapped: its row, with the reading it had
    (key, row, _p), = side.rows()
    assert key == "S1" and row["connectors"][0][2] == 10.0
    assert side.side.unmapped == set()


@pytest.mark.parametrize(
    ("key", "partition", "reason"),
    [("wrong-key", None, "key"), (None, None, "key"), ("S1", "wrong", "partition")],
)
def test_a_misrouted_reading_is_rerouted_keyed_by_its_station(key, partition, reason) -> None:
    side = Side()
    right = partition_of("S1", PARTITIONS)
    part = (right + 1) % PARTITIONS if partition == "wrong" else partition
    labels = {"topic": METER, "reason": reason}
    before = metrics.REPARTITIONED.labels(**labels)._value.get()
    side.feed(record(METER, key, reading("S1", 10.0, time.time()), partition=part))
    rerouted = side.out.sent(side.i.meter_repartition)
    assert rerouted == [("S1", reading("S1", 10.0, rerouted[0][1]["event_ts"] / 1000))]
    assert side.store.get("S1") is None  # applied only when it comes back, rightly placed
    assert metrics.REPARTITIONED.labels(**labels)._value.get() == before + 1


def test_bad_readings_are_dead_lettered_with_their_reason_and_the_batch_goes_on() -> None:
    side = Side()
    side.map("S1", "ZA")
    side.feed(
        record(METER, "S1", b"not json", offset=1),
        record(METER, "S1", {**reading("S1", -5.0, time.time())}, offset=2),
        record(METER, "S1", reading("S1", 7.0, time.time()), offset=3),
    )
    letters = side.out.sent(side.t.deadletter)
    assert [(v["offset"], v["reason"]) for _k, v in letters] == [
        (1, "not_json"), (2, "power_kw:greater_than_equal")]
    assert side.store.get("S1").state.connectors[1].power_kw == 7.0


def test_replay_from_a_checkpoint_applies_nothing_twice() -> None:
    """A crash after a checkpoint: the next owner loads it and replays from the committed
    offset (and a little before) — state ends where an uninterrupted run would."""
    now = time.time() - 100
    # Kafka's timestamps travel with the records: a replay hears each reading when it was
    # first heard.
    records = [record(METER, "S1", reading("S1", 10.0 + i, now + i), offset=i,
                      timestamp_ms=int((now + i + 0.2) * 1000)) for i in range(40)]
    whole = Side()
    whole.map("S1", "ZA")
    whole.feed(*records)

    tables = memory_tables()
    crashed = Side(tables)
    crashed.map("S1", "ZA")
    crashed.feed(*records[:25])
    crashed.store.checkpoint()
    crashed.feed(*records[25:30])  # applied, never checkpointed: lost with the crash

    recovered = Side(tables)
    recovered.store.load_partition(partition_of("S1", PARTITIONS))
    recovered.feed(*records[20:])  # replay from before the checkpoint's offset
    a, b = whole.store.get("S1").state, recovered.store.get("S1").state
    assert a.connectors == b.connectors
    assert a.windows.snapshot() == b.windows.snapshot()


def test_a_station_that_moves_is_tombstoned_only_where_its_zone_partition_changes() -> None:
    side = Side()
    za = zone_in(0)
    za2, zb = zone_in(0, avoid=za), zone_in(1)
    side.map("S1", za)
    side.map("S1", za2)  # same partition: the new row replaces the old one
    assert [(k, v and v["zone_id"], p) for k, v, p in side.rows()] == [
        ("S1", za, 0), ("S1", za2, 0)]
    side.out.pending.clear()
    side.map("S1", zb)  # another partition: the old one's row is tombstoned there
    assert [(k, v and v["zone_id"], p) for k, v, p in side.rows()] == [
        ("S1", None, 0), ("S1", zb, 1)]
    side.out.pending.clear()
    side.map("S1", None)  # tombstone: it leaves evgrid
    assert side.rows() == [("S1", None, 1)]
    assert side.store.tables.station_config.get(b"S1") is None
    side.feed(record(METER, "S1", reading("S1", 10.0, time.time())))
    assert side.rows() == [("S1", None, 1)]  # unmapped: its readings reach no zone


def outcome(station_id: str, ts: float) -> dict:
    return {"command_id": "c1", "station_id": station_id, "action": "SET",
            "status": "Rejected", "reason": "profile rejected", "ts": iso(ts)}


def test_an_outcome_travels_in_a_row_and_every_later_row_repeats_it() -> None:
    side = Side()
    side.map("S1", "ZA")
    side.out.pending.clear()
    ts = time.time()
    side.feed(record(side.t.outcomes, "S1", outcome("S1", ts)))
    side.feed(record(METER, "S1", reading("S1", 10.0, time.time()), offset=1))
    side.map("S1", "ZA")  # mapped again: a row, with the outcome it had
    rows = [(key, value) for key, value, _p in side.rows() if value["kind"] == "row"]
    assert [(key, value["outcome"]) for key, value in rows] == [
        ("S1", ["c1", "Rejected", "profile rejected", pytest.approx(ts, abs=1e-3)])] * 2
    assert rows[1][1]["connectors"][0][2] == 10.0  # ... and the reading heard in between
    assert {p for _k, _v, p in side.rows()} == {partition_of("ZA", PARTITIONS)}


def test_a_mapping_or_an_outcome_sends_a_row_and_readings_never_do() -> None:
    side = Side()
    now = time.time() - 100
    side.map("S1", "ZA")
    assert [(key, value["kind"]) for key, value, _p in side.rows()] == [("S1", "row")]
    side.out.pending.clear()
    # New sessions, new powers, heartbeats: each changes the picture, none sends a row.
    for i in range(10):
        r = {**reading("S1", 10.0 + 5 * i, now + 40 * i), "session_id": f"s{i // 3}"}
        side.feed(record(METER, "S1", r, offset=i, timestamp_ms=int((now + 40 * i) * 1000)))
    assert {(key, value["kind"]) for key, value, _p in side.rows()} == {
        (loads_key("ZA"), "loads")}
    assert len(side.rows()) == 10
    side.out.pending.clear()
    side.feed(record(side.t.outcomes, "S1", outcome("S1", time.time())))
    assert [(key, value["kind"]) for key, value, _p in side.rows()] == [("S1", "row")]


def test_a_row_sent_after_a_reading_in_the_same_batch_leaves_no_loads_record() -> None:
    """The row carries the reading: the zone needs no loads record for it, not even an
    empty one."""
    side = Side()
    side.map("S1", "ZA")
    side.map("S2", "ZB")
    side.out.pending.clear()
    now = time.time()
    side.inputs.dispatch(record(METER, "S1", reading("S1", 10.0, now)))
    side.inputs.dispatch(record(side.t.outcomes, "S1", outcome("S1", now)))
    side.inputs.dispatch(record(METER, "S2", reading("S2", 20.0, now)))
    side.map("S2", "ZA")  # moved: its reading travels in its new row
    assert side.side.flush_loads() == 0
    assert [(key, value["kind"]) for key, value, _p in side.rows()
            if value is not None] == [("S1", "row"), ("S2", "row")]  # (and S2's tombstone)
    assert side.loads() == []


def test_readings_of_stations_another_worker_owns_now_are_not_sent() -> None:
    side = Side()
    (mine,), (theirs, also_theirs) = (
        [f"S{i}" for i in range(100) if partition_of(f"S{i}", PARTITIONS) == p][:n]
        for p, n in ((0, 1), (1, 2)))
    for station_id, zone_id in ((mine, "ZA"), (theirs, "ZA"), (also_theirs, "ZB")):
        side.map(station_id, zone_id)
    side.out.pending.clear()
    now = time.time()
    for station_id in (mine, theirs, also_theirs):
        side.inputs.dispatch(record(METER, station_id, reading(station_id, 10.0, now)))
    side.side.forget_partitions({0})
    assert side.side.flush_loads() == 1  # ZB's only changed station is theirs: no record
    assert [(key, list(stations)) for key, stations, _p in side.loads()] == [
        (loads_key("ZA"), [mine])]


def test_a_large_zone_s_loads_are_split_into_records_under_the_message_size(
        monkeypatch) -> None:
    import evgrid.handlers.stations as stations_module

    monkeypatch.setattr(stations_module, "LOADS_RECORD_STATIONS", 2)
    side = Side()
    ids = [f"S{i}" for i in range(5)]
    for station_id in ids:
        side.map(station_id, "ZA")
    side.out.pending.clear()
    now = time.time()
    for station_id in ids:
        side.inputs.dispatch(record(side.t.meter_values, station_id,
                                    reading(station_id, 10.0, now)))
    assert side.side.flush_loads() == 1  # one zone
    records = side.loads()
    assert [len(listed) for _key, listed, _p in records] == [2, 2, 1]
    assert sorted(sid for _key, listed, _p in records for sid in listed) == ids
