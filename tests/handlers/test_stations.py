"""The batch path without a broker: decode → core → coalesced zone messages, dead letters,
re-routing by key and by partition, and replay from a checkpoint that counts nothing twice."""

from __future__ import annotations

import time

import pytest

from evgrid.core.types import StationConfig, Tunables
from evgrid.ingest.stations import StationIngest
from evgrid.state.stations import StationStore
from evgrid.state.tables_io import partition_of
from tests.fakes import PARTITIONS, RecordingPublisher, memory_tables, record, settings

METER = "ocpp.meter_values"


def reading(station_id: str, kw: float, ts: float, connector_id: int = 1) -> dict:
    return {"station_id": station_id, "connector_id": connector_id, "session_id": "s",
            "connector_type": "CCS", "power_kw": kw, "event_ts": ts * 1000}


class Side:
    def __init__(self, tables=None) -> None:
        self.settings = settings()
        self.out = RecordingPublisher(self.settings)
        self.store = StationStore(tables or memory_tables(), Tunables(), PARTITIONS,
                                  self.settings.topics.station_zones)
        self.ingest = StationIngest(self.settings, self.store, self.out)

    def map(self, station_id: str, zone_id: str) -> None:
        self.ingest.on_mapping(station_id, partition_of(station_id, PARTITIONS),
                               StationConfig(station_id, zone_id, 150.0, 150.0))

    def feed(self, *records) -> None:
        for r in records:
            self.ingest.on_meter_value(r)
        self.ingest.flush_zone_loads()

    def zone_messages(self, kind: str) -> list[dict]:
        topic = self.settings.topics.station_load
        return [v for _k, v in self.out.sent(topic) if v["kind"] == kind]


def test_readings_of_one_batch_reach_each_zone_as_one_coalesced_message() -> None:
    side = Side()
    now = time.time()
    for i in range(6):
        side.map(f"S{i}", "ZA" if i < 4 else "ZB")
    side.out.pending.clear()
    side.feed(*(record(METER, f"S{i}", reading(f"S{i}", 10.0 + i, now), offset=i)
                for i in range(6)))
    loads = side.zone_messages("loads")
    assert sorted(m["zone_id"] for m in loads) == ["ZA", "ZB"]
    za = next(m for m in loads if m["zone_id"] == "ZA")
    assert sorted(s["station_id"] for s in za["stations"]) == ["S0", "S1", "S2", "S3"]
    assert za["stations"][0]["connectors"][0][:3] == [1, "CCS", 10.0]


def test_a_steady_reading_is_not_forwarded_again_within_the_heartbeat() -> None:
    side = Side()
    now = time.time()
    side.map("S1", "ZA")
    side.feed(record(METER, "S1", reading("S1", 10.0, now - 2)))
    side.out.pending.clear()
    side.feed(record(METER, "S1", reading("S1", 10.01, now - 1), offset=1))
    assert side.zone_messages("loads") == []
    side.feed(record(METER, "S1", reading("S1", 12.0, now), offset=2))
    assert len(side.zone_messages("loads")) == 1


@pytest.mark.parametrize(
    ("key", "partition", "reason"),
    [("wrong-key", None, "key"), (None, None, "key"), ("S1", "wrong", "partition")],
)
def test_a_misrouted_reading_is_rerouted_keyed_by_its_station(key, partition, reason) -> None:
    side = Side()
    right = partition_of("S1", PARTITIONS)
    part = (right + 1) % PARTITIONS if partition == "wrong" else partition
    side.feed(record(METER, key, reading("S1", 10.0, time.time()), partition=part))
    rerouted = side.out.sent(side.settings.topics.meter_repartition)
    assert rerouted == [("S1", reading("S1", 10.0, rerouted[0][1]["event_ts"] / 1000))]
    assert side.store.get("S1") is None  # applied only when it comes back, rightly placed
    from evgrid import metrics

    labels = {"topic": METER, "reason": reason}
    assert metrics.REPARTITIONED.labels(**labels)._value.get() >= 1


def test_bad_readings_are_dead_lettered_with_their_reason_and_the_batch_goes_on() -> None:
    side = Side()
    side.map("S1", "ZA")
    side.feed(
        record(METER, "S1", b"not json", offset=1),
        record(METER, "S1", {**reading("S1", -5.0, time.time())}, offset=2),
        record(METER, "S1", reading("S1", 7.0, time.time()), offset=3),
    )
    letters = side.out.sent(side.settings.topics.deadletter)
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


def test_a_station_that_moves_leaves_its_old_zone_and_joins_the_new_one() -> None:
    side = Side()
    side.map("S1", "ZA")
    side.map("S1", "ZB")
    topic = side.settings.topics.station_load
    kinds = [(k, v["kind"]) for k, v in side.out.sent(topic)]
    assert ("ZA", "left") in kinds and kinds.count(("ZB", "joined")) == 1
    side.ingest.on_mapping("S1", partition_of("S1", PARTITIONS), None)  # tombstone
    assert side.out.sent(topic)[-1] == ("ZB", {"kind": "left", "zone_id": "ZB",
                                               "station_id": "S1"})
    assert side.store.tables.station_config.get(b"S1") is None
