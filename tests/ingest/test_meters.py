"""The meter-value Service's batch loop without a broker: each zone's loads coalesced over
batches until the interval passes, and never committed before they are handed to the
producer."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import orjson
from aiokafka import TopicPartition

from evgrid.ingest import meters
from evgrid.ingest.meters import MeterIngest
from evgrid.ingest.records import SignalIngest
from evgrid.models.internal import loads_key
from evgrid.publisher import Publisher
from evgrid.state.tables_io import partition_of
from tests.fakes import PARTITIONS, settings
from tests.handlers.test_stations import METER, Side, reading, record


class Producer:
    """What reached the producer, in order, with the commits interleaved."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.buffer = SimpleNamespace(size=0, should_stop=False)  # Faust's, for table writes
        self.messages: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.log.append(("sent", topic))
        self.messages.append((topic, key, value, partition))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        self.log.append(("flushed", None))


class Consumer:
    def __init__(self, log: list) -> None:
        self.log = log

    async def commit(self, offsets) -> None:
        self.log.append(("committed", dict(offsets)))

    end: int | None = None  # the partition's end offset, as the last fetch saw it

    def highwater(self, tp):
        return self.end


def service() -> tuple[MeterIngest, Side, list]:
    log: list = []
    app = SimpleNamespace(producer=Producer(log))
    side = Side(out=Publisher(app, settings()))  # type: ignore[arg-type]
    ingest = MeterIngest(side.settings, side.out, side.inputs.dispatch, side.store, side.side)
    ingest.consumer = Consumer(log)  # type: ignore[assignment]
    return ingest, side, log


def in_partition_0(n: int) -> list[str]:
    """`n` station ids whose partition is 0 (where these tests' records sit)."""
    return [f"S{i}" for i in range(200) if partition_of(f"S{i}", PARTITIONS) == 0][:n]


def heard_of(side: Side, ids: list[str]) -> None:
    """Each station's zone has had a reading of it: the next ones are coalesced."""
    then = time.time() - 10
    for i, station_id in enumerate(ids):
        side.inputs.dispatch(record(METER, station_id, reading(station_id, 1.0, then),
                                    offset=1000 + i, partition=0))
    side.side.flush_loads()
    side.out.pending.clear()
    assert not side.side.urgent


def records_sent(log: list, topic: str) -> int:
    return sum(1 for what, t in log if what == "sent" and t == topic)


async def test_loads_wait_for_the_interval_and_precede_every_commit() -> None:
    ingest, side, log = service()
    station_rows = side.i.station_rows
    ids = in_partition_0(4)
    for station_id in ids:
        side.map(station_id, "ZA")
    side.out.pending.clear()
    now = time.time()
    tp = TopicPartition(METER, 0)
    ingest.owned = {0}
    for batch in range(3):  # three batches, every station in each
        records = [record(METER, s, reading(s, 10.0 + batch, now + batch),
                          offset=batch * 4 + i, partition=0) for i, s in enumerate(ids)]
        await ingest._apply({tp: records})
    assert records_sent(log, station_rows) == 0  # coalesced, not yet due
    await ingest.checkpoint_and_commit()
    # One loads record for the zone, each station with its newest reading, before the commit.
    assert records_sent(log, station_rows) == 1
    ((key, value, partition),) = [
        (key, orjson.loads(value), partition) for topic, key, value, partition
        in ingest.out.app.producer.messages if topic == station_rows]
    assert (key.decode(), value["kind"], partition) == (
        loads_key("ZA"), "loads", partition_of("ZA", PARTITIONS))
    assert sorted(s["station_id"] for s in value["stations"]) == sorted(ids)
    assert {c[2] for s in value["stations"] for c in s["connectors"]} == {12.0}
    first_commit = next(i for i, (what, _) in enumerate(log) if what == "committed")
    loads_at = next(i for i, (what, t) in enumerate(log) if what == "sent" and t == station_rows)
    assert loads_at < first_commit
    assert log[first_commit][1] == {tp: 12}
    assert ("flushed", None) in log[loads_at:first_commit]


async def test_loads_leave_once_the_interval_passed_even_when_behind(monkeypatch) -> None:
    ingest, side, log = service()
    monkeypatch.setattr(meters, "LOADS_CHUNK", 1)  # a chunk a zone: the loop between
    ids = in_partition_0(2)
    for station_id, zone_id in zip(ids, ("ZA", "ZB"), strict=True):
        side.map(station_id, zone_id)
    heard_of(side, ids)
    tp = TopicPartition(METER, 0)
    now = time.time()
    await ingest._apply({tp: [record(METER, s, reading(s, 10.0, now), offset=i, partition=0)
                              for i, s in enumerate(ids)]})
    ingest._behind = 1000  # the batch left records behind it
    ingest._last_loads = time.monotonic()
    control: list[str] = []

    async def control_first() -> None:
        control.append("way given")

    side.out.control_first = control_first  # type: ignore[method-assign]
    await ingest.after_fetch(True)
    assert records_sent(log, side.i.station_rows) == 0  # behind, within the interval
    ingest._last_loads = time.monotonic() - meters.LOADS_INTERVAL_S
    await ingest.after_fetch(True)
    sent = [key.decode() for topic, key, _v, _p in ingest.out.app.producer.messages
            if topic == side.i.station_rows]
    assert sorted(sent) == [loads_key("ZA"), loads_key("ZB")]
    assert len(control) == 2  # the loop given way after each chunk


async def test_signals_a_cold_zone_holds_are_never_committed_past() -> None:
    s = settings()
    log: list = []
    app = SimpleNamespace(producer=Producer(log))
    held = record(s.topics.demand_response, "Z1", b"{}", offset=5, partition=1)
    zones = SimpleNamespace(held_signals=lambda: iter([held]))
    signals = SignalIngest(s, Publisher(app, s), lambda record: None,  # type: ignore[arg-type]
                           zones)  # type: ignore[arg-type]
    signals.consumer = Consumer(log)  # type: ignore[assignment]
    signals.owned = {0, 1}
    held_tp = TopicPartition(s.topics.demand_response, 1)
    other_tp = TopicPartition(s.topics.demand_response, 0)
    signals.positions = {held_tp: 9, other_tp: 4}
    await signals.checkpoint_and_commit()
    assert log[-1] == ("committed", {held_tp: 5, other_tp: 4})


async def test_a_periodic_checkpoint_commits_the_offsets_it_started_from(monkeypatch) -> None:
    """Ingestion goes on while the checkpoint waits for Faust's buffer; what was applied
    meanwhile is not committed (a crash replays it, and it changes nothing held)."""
    ingest, side, log = service()
    monkeypatch.setattr(meters, "CHECKPOINT_CHUNK", 1)
    ids = in_partition_0(4)
    for station_id in ids:
        side.map(station_id, "ZA")
    tp = TopicPartition(METER, 0)
    ingest.owned = {0}
    now = time.time()

    def batch(offset: int, station_id: str, ts: float) -> dict:
        return {tp: [record(METER, station_id, reading(station_id, 10.0, ts), offset=offset,
                            partition=0)]}

    for offset, station_id in enumerate(ids[:3]):
        await ingest._apply(batch(offset, station_id, now))
    waits = []

    async def drain() -> int:  # the batch loop runs while the checkpoint waits for room
        waits.append(len(waits))
        if len(waits) == 1:
            await ingest._apply(batch(3, ids[0], now + 1))
        return 0

    side.out.drain = drain  # type: ignore[method-assign]
    await ingest.checkpoint_in_steps()
    assert len(waits) >= 3  # a wait after every chunk
    assert [what for what in log if what[0] == "committed"] == [("committed", {tp: 3})]
    assert ingest.positions[tp] == 4
    # A rebalance while it waits makes it give up: the revocation checkpoints everything.
    log.clear()
    await ingest._apply(batch(4, ids[3], now + 2))

    async def revoked_meanwhile() -> int:
        ingest._epoch += 1
        return 0

    side.out.drain = revoked_meanwhile  # type: ignore[method-assign]
    await ingest.checkpoint_in_steps()
    assert [what for what in log if what[0] == "committed"] == []


async def test_loads_leave_after_each_batch_when_caught_up_and_wait_when_behind() -> None:
    ingest, side, log = service()
    station_rows = side.i.station_rows
    (station_id,) = in_partition_0(1)
    side.map(station_id, "ZA")
    heard_of(side, [station_id])
    tp = TopicPartition(METER, 0)
    ingest.owned = {0}
    ingest._last_loads = time.monotonic()  # the interval has not passed
    now = time.time()
    offset = 0

    async def fetch() -> dict:
        return {tp: [record(METER, station_id, reading(station_id, 10.0 + offset, now + offset),
                            offset=offset, partition=0)]}

    ingest.fetch = fetch  # type: ignore[method-assign]
    ingest.consumer.end = 100  # type: ignore[union-attr]  (99 more records wait)
    await ingest._step()
    assert records_sent(log, station_rows) == 0  # behind: coalesced
    offset = 1
    ingest.consumer.end = 2  # type: ignore[union-attr]  (this batch reaches the end)
    await ingest._step()
    assert records_sent(log, station_rows) == 1  # caught up: at once, both batches in one
    ((_t, key, value, _p),) = [m for m in ingest.out.app.producer.messages
                               if m[0] == station_rows]
    assert key.decode() == loads_key("ZA")
    assert [s["connectors"][0][2] for s in orjson.loads(value)["stations"]] == [11.0]


async def test_a_station_its_zone_has_no_reading_of_is_sent_at_once_even_when_behind() -> None:
    ingest, side, log = service()
    (station_id,) = in_partition_0(1)
    side.map(station_id, "ZA")  # mapped, never read: its zone lists it without a load
    side.out.pending.clear()
    tp = TopicPartition(METER, 0)
    ingest._last_loads = time.monotonic()  # the interval has not passed
    ingest._behind = 1000
    await ingest._apply({tp: [record(METER, station_id, reading(station_id, 10.0, time.time()),
                                     offset=0, partition=0)]})
    ingest._behind = 1000  # the batch left records behind it
    await ingest.after_fetch(True)
    assert records_sent(log, side.i.station_rows) == 1  # at once: the picture was missing it
    assert not side.side.urgent
    await ingest._apply({tp: [record(METER, station_id, reading(station_id, 20.0, time.time()),
                                     offset=1, partition=0)]})
    ingest._behind = 1000
    await ingest.after_fetch(True)
    assert records_sent(log, side.i.station_rows) == 1  # heard of now: coalesced again


class GrowingPartition:
    """A partition with nothing in it until a reading lands right after the Service's first
    offsets query (a worker starting while chargers report)."""

    def __init__(self) -> None:
        self.timestamps_ms: list[int] = []
        self.queried = False

    def _land(self) -> None:
        if not self.queried:
            self.queried = True
        elif not self.timestamps_ms:
            self.timestamps_ms.append(int(time.time() * 1000))

    async def end_offsets(self, tps):
        self._land()
        return {tp: len(self.timestamps_ms) for tp in tps}

    async def beginning_offsets(self, tps):
        self._land()
        return {tp: 0 for tp in tps}

    async def offsets_for_times(self, times):
        self._land()
        return {tp: next((SimpleNamespace(offset=i) for i, ts in enumerate(self.timestamps_ms)
                          if ts >= at), None) for tp, at in times.items()}

    async def committed(self, tp):
        return None


async def test_a_reading_landing_while_a_new_partition_starts_is_not_skipped() -> None:
    ingest, _side, _log = service()
    ingest.replay_bound_s = 600.0
    partition = GrowingPartition()
    ingest.consumer = partition  # type: ignore[assignment]
    tp = TopicPartition(METER, 0)
    start = await ingest._start_offsets([tp])
    assert partition.timestamps_ms, "the reading should have landed during the queries"
    assert start[tp] == 0  # from the reading that landed, not past it
