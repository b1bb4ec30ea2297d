"""Station side, zone stage, DR signals and clock without a broker, joined by the worker's own
route table: decode → core → emit, the station rows and zone loads handed to the zone stage as
a consumer of their topic would fetch them."""

from __future__ import annotations

import time
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from evgrid import metrics
from evgrid.core.types import Tunables
from evgrid.handlers.clock import ZoneClock
from evgrid.handlers.signals import DRSignals
from evgrid.handlers.stations import StationSide
from evgrid.handlers.zone import ZoneStage
from evgrid.models.internal import loads_key
from evgrid.runtime import Runtime, input_path
from evgrid.state.stations import StationStore
from evgrid.state.tables_io import partition_of
from evgrid.state.zones import ZoneStore
from evgrid.timeutil import iso
from evgrid.web.views import recent_reports
from tests.fakes import PARTITIONS, Rec, RecordingPublisher, memory_tables, record, settings


class World:
    """One worker's station side and zone side over in-memory tables, fed through its route
    table. `log` keeps every record of the station-rows topic it delivered (rows, tombstones,
    loads): the topic, for a next owner."""

    def __init__(self, tables=None) -> None:
        self.settings = settings()
        self.t = self.settings.topics
        self.i = self.settings.internal_topics
        self.tables = tables or memory_tables()
        self.out = RecordingPublisher(self.settings)
        self.zones = ZoneStore(self.tables, Tunables(), PARTITIONS, self.i.station_rows)
        self.stage = ZoneStage(self.settings, self.zones, self.out)
        self.dr = DRSignals(self.settings, self.stage, self.out)
        self.stations = StationStore(self.tables, Tunables(), PARTITIONS, self.t.station_zones)
        self.side = StationSide(self.settings, self.stations, self.out)
        self.inputs = input_path(self.settings, self.out, self.side, self.stage, self.dr)
        self.log: list[Rec] = []

    def feed(self, topic: str, key: str | None, value: dict | bytes | None) -> None:
        """One input record, stamped like Kafka would: later records, later times."""
        self.kafka_ms = max(int(time.time() * 1000), getattr(self, "kafka_ms", 0) + 1)
        self.inputs.dispatch(record(topic, key, value, timestamp_ms=self.kafka_ms))

    def deliver_picture(self) -> list[Rec]:
        """The station rows and zone loads queued so far, through the zone stage, in the
        order sent."""
        rows = self.out.take(self.i.station_rows)
        for row in rows:
            self.inputs.dispatch(row)
        self.log.extend(rows)
        return rows

    def read_back(self, log: list[Rec], partition: int) -> None:
        """A new owner of `partition`: its rows read from the beginning, then loaded."""
        for row in log:
            if row.partition == partition:
                self.inputs.dispatch(row)
        Runtime.zone_partition_loaded(self, partition)  # type: ignore[arg-type]

    def clock(self, partitions: set[int]) -> ZoneClock:
        """The zone clock of a worker actively owning `partitions`."""
        app = SimpleNamespace(rebalancing=False, assignor=SimpleNamespace())
        owns(app, self.i.assignment, partitions)
        return ZoneClock(app, self.settings, self.stage, self.dr)

    def mapping(self, station_id: str, zone_id: str | None) -> None:
        self.feed(self.t.station_zones, station_id, None if zone_id is None else {
            "station_id": station_id, "zone_id": zone_id, "max_station_kw": 150.0,
            "contract_max_kw": 150.0})

    def reading(self, station_id: str, kw: float) -> None:
        """A reading, later than any before it (a reading no newer than the last is
        superseded), and the loads it changes sent."""
        self.event_ts = max(time.time(), getattr(self, "event_ts", 0.0) + 0.001)
        self.feed(self.t.meter_values, station_id, {
            "station_id": station_id, "connector_id": 1, "session_id": "s",
            "connector_type": "CCS", "power_kw": kw, "event_ts": iso(self.event_ts)})
        self.side.flush_loads()

    def map(self, station_id: str, zone_id: str, kw: float) -> None:
        self.mapping(station_id, zone_id)
        self.reading(station_id, kw)
        self.deliver_picture()

    def signal(self, zone_id: str, reduction_kw: float, key: str | None = None,
               signal_id: str = "DR1") -> None:
        now = time.time()
        body = {"signal_id": signal_id, "zone_id": zone_id, "signal_type": "CURTAIL",
                "target_reduction_kw": reduction_kw, "start_ts": iso(now - 1),
                "end_ts": iso(now + 600), "priority": 2, "received_ts": iso(now)}
        self.feed(self.t.demand_response, key or zone_id, body)

    def restore(self, zone_id: str, signal_id: str = "DR1") -> None:
        now = time.time()
        self.feed(self.t.demand_response, zone_id, {
            "signal_id": signal_id, "zone_id": zone_id, "signal_type": "RESTORE",
            "start_ts": iso(now - 1), "end_ts": iso(now + 600), "priority": 2,
            "received_ts": iso(now + 1)})

    def commands(self) -> dict[str, float]:
        return {k: v["target_power_kw"] for k, v in self.out.sent(self.t.commands)}

    def actions(self) -> list[tuple[str, str, float | None]]:
        return [(k, v["action"], v["target_power_kw"]) for k, v in self.out.sent(self.t.commands)]


def owns(app: SimpleNamespace, topic: str, partitions: set[int]) -> None:
    """Faust's assignor gives `app` the assignment topic's `partitions` (actively), and the
    other partitions of it as standbys."""
    app.assignor.assigned_actives = lambda: {TP(topic, p) for p in partitions}
    app.assignor.assigned_standbys = lambda: {TP(topic, p) for p in range(PARTITIONS)
                                              if p not in partitions}


def zone_elsewhere(zone_id: str) -> str:
    """A zone id whose partition is not `zone_id`'s."""
    home = partition_of(zone_id, PARTITIONS)
    return next(z for z in (f"Z{i}" for i in range(100)) if partition_of(z, PARTITIONS) != home)


def test_a_signal_is_allocated_over_the_stations_the_zone_stage_heard_of() -> None:
    world = World()
    for i, kw in enumerate((50.0, 30.0, 20.0)):
        world.map(f"S{i}", "Z1", kw)
    world.signal("Z1", 50.0)
    targets = world.commands()
    assert set(targets) == {"S0", "S1", "S2"}
    assert sum(targets.values()) == pytest.approx(50.0)
    status = world.out.sent(world.t.dr_status)[-1][1]
    assert status["cap_kw"] == 50.0 and status["load_age_s"] is not None


def test_a_wrongly_keyed_signal_is_rerouted_and_decided_when_it_comes_back() -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.signal("Z1", 10.0, key="not-the-zone")
    assert world.commands() == {}
    (key, body), = world.out.sent(world.i.dr_repartition)
    assert key == "Z1"
    world.feed(world.i.dr_repartition, "Z1", orjson.dumps(body))
    assert world.commands() == {"S0": 30.0}


def test_a_malformed_station_row_is_dead_lettered_not_dropped() -> None:
    world = World()
    world.feed(world.i.station_rows, "S1", {"kind": "row", "zone_id": "Z1", "station_id": "S1",
                                            "limits": {"max_station_kw": 10.0,
                                                       "contract_max_kw": 10.0},
                                            "gossip": True})
    (_key, letter), = world.out.sent(world.t.deadletter)
    assert letter["source_topic"] == world.i.station_rows
    assert letter["reason"] == "gossip:extra_forbidden"
    assert "Z1" not in world.zones.zones


def loads_body(zone_id: str, station_id: str, kw: float, at: float) -> dict:
    return {"kind": "loads", "zone_id": zone_id, "stations": [
        {"station_id": station_id, "connectors": [[1, "CCS", kw, at, "s", at]]}]}


def test_a_loads_record_older_than_the_stale_limit_is_skipped_without_decoding() -> None:
    """A new owner reading back its partition: loads that old hold only readings that count
    0 kW, so they are neither decoded nor dead-lettered; an old row is the station's
    membership, and is applied however old."""
    world = World()
    world.map("S0", "Z1", 40.0)
    partition = partition_of("Z1", PARTITIONS)
    old_ms = int((time.time() - 600) * 1000)  # 10 minutes: past the stale limit
    assert old_ms < (time.time() - world.settings.stale_after_s) * 1000
    before = world.zones.zones["Z1"].load.stations["S0"]
    for body in (b"not json", orjson.dumps(loads_body("Z1", "S0", 99.0, time.time()))):
        world.inputs.dispatch(Rec(world.i.station_rows, partition, 0,
                                  loads_key("Z1").encode(), body, timestamp=old_ms))
    assert world.out.sent(world.t.deadletter) == []
    assert world.zones.zones["Z1"].load.stations["S0"] is before
    row = {"kind": "row", "zone_id": "Z1", "station_id": "S1", "mapped_at": old_ms,
           "limits": {"max_station_kw": 50.0, "contract_max_kw": 50.0}}
    world.inputs.dispatch(Rec(world.i.station_rows, partition, 1, b"S1", orjson.dumps(row),
                              timestamp=old_ms))
    assert world.zones.member_of["S1"] == "Z1"
    # The same malformed loads, recent: dead-lettered like any bad record.
    world.inputs.dispatch(Rec(world.i.station_rows, partition, 2, loads_key("Z1").encode(),
                              b"not json", timestamp=int(time.time() * 1000)))
    assert [v["reason"] for _k, v in world.out.sent(world.t.deadletter)] == ["not_json"]


def loads_not_member() -> float:
    return metrics.LOADS_NOT_MEMBER._value.get()


def test_loads_naming_a_station_the_zone_does_not_list_change_nothing_and_are_counted(
) -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.map("S1", "Z2", 30.0)
    z1, z2 = world.zones.zones["Z1"], world.zones.zones["Z2"]
    before = (dict(z1.load.stations), dict(z2.load.stations), dict(world.zones.member_of),
              z1.loads_at, z2.loads_at)
    counted = loads_not_member()
    now = time.time() + 1
    for station_id in ("S9", "S1"):  # unknown; a member of another zone
        world.inputs.dispatch(Rec(world.i.station_rows, z1.partition, 0,
                                  loads_key("Z1").encode(),
                                  orjson.dumps(loads_body("Z1", station_id, 80.0, now)),
                                  timestamp=int(time.time() * 1000)))
    after = (dict(z1.load.stations), dict(z2.load.stations), dict(world.zones.member_of),
             z1.loads_at, z2.loads_at)
    assert after == before
    assert loads_not_member() == counted + 2
    assert world.out.sent(world.t.deadletter) == []


async def test_readings_reach_the_zone_as_its_loads_and_count_in_its_figures() -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.map("S1", "Z1", 30.0)
    world.out.pending.clear()
    later = iso(time.time() + 1)
    for station_id, kw in (("S0", 45.0), ("S1", 25.0)):  # one batch
        world.feed(world.t.meter_values, station_id, {
            "station_id": station_id, "connector_id": 1, "session_id": "s",
            "connector_type": "CCS", "power_kw": kw, "event_ts": later})
    world.side.flush_loads()
    (loads,) = world.deliver_picture()  # both readings, one record
    assert (loads.key, loads.partition) == (loads_key("Z1").encode(),
                                            partition_of("Z1", PARTITIONS))
    stations = world.zones.zones["Z1"].load.stations
    assert {s: [c.power_kw for c in row.connectors] for s, row in stations.items()} == {
        "S0": [45.0], "S1": [25.0]}
    world.signal("Z1", 35.0)  # 70 kW heard: cap 35
    assert sum(world.commands().values()) == pytest.approx(35.0)


async def test_a_tombstone_without_key_is_dead_lettered() -> None:
    world = World()
    world.feed(world.t.station_zones, None, None)
    world.feed(world.i.station_rows, None, None)
    letters = world.out.sent(world.t.deadletter)
    assert [(v["source_topic"], v["reason"]) for _k, v in letters] == [
        (world.t.station_zones, "tombstone_without_key"),
        (world.i.station_rows, "tombstone_without_key")]


async def test_a_new_owner_holds_signals_until_its_partition_is_read_back() -> None:
    first = World()
    for i in range(2):
        first.map(f"S{i}", "Z1", 40.0)
    second = World(first.tables)  # takes the zone over after a rebalance
    partition = partition_of("Z1", PARTITIONS)
    second.zones.keep_only({partition}, time.time())
    assert second.zones.loading == {partition}
    second.signal("Z1", 20.0)
    assert second.commands() == {}  # cold: no decision on a partial picture
    assert [r.offset for r in second.zones.held_signals()] == [0]
    clock = second.clock({partition})
    await clock.run_once()
    assert second.commands() == {}
    for row in first.log:  # the rows, read back; the end is not reached yet
        second.inputs.dispatch(row)
    await clock.run_once()
    assert second.commands() == {} and second.zones.zones["Z1"].cold
    Runtime.zone_partition_loaded(second, partition)  # type: ignore[arg-type]
    assert sum(second.commands().values()) == pytest.approx(60.0)
    assert list(second.zones.held_signals()) == []


async def test_a_decision_taken_before_every_member_was_known_is_retaken_as_they_arrive() -> None:
    world = World()
    world.map("S0", "Z1", 50.0)
    world.map("S1", "Z1", 50.0)
    world.signal("Z1", 50.0)  # 100 kW known: cap 50
    status = world.out.sent(world.t.dr_status)[-1][1]
    assert (status["members"], status["members_reporting"]) == (2, 2)
    assert set(world.commands()) == {"S0", "S1"}
    world.out.pending.clear()
    world.map("S2", "Z1", 40.0)  # mapped and reporting after the decision
    world.map("S3", "Z1", 40.0)
    zone = world.zones.zones["Z1"]
    clock = world.clock({zone.partition})
    assert await clock.run_once(now=time.time() + 1.5) == 1  # the re-evaluation each second
    targets = world.commands()
    assert {"S2", "S3"} <= set(targets)  # the late members are allocated too
    view = zone.controller.view(time.time() + 1.5)
    assert view["cap_kw"] == 50.0  # the cap is held: new load is shed, not added
    standing = zone.controller.commanded
    assert set(standing) == {"S0", "S1", "S2", "S3"}
    assert sum(c.target_kw for c in standing.values()) == pytest.approx(50.0)


async def test_the_clock_steps_only_zones_of_partitions_it_actively_owns() -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.signal("Z1", 10.0)
    zone = world.zones.zones["Z1"]
    world.out.pending.clear()
    clock = world.clock({(zone.partition + 1) % PARTITIONS})
    assert await clock.run_once(now=time.time() + 700) == 0  # the event ended, but not ours
    assert world.out.sent(world.t.zone_load) == []  # nor its load
    owns(clock.app, world.i.assignment, {zone.partition})
    clock._last_gauges = 0.0
    clock._sampled = {}
    assert await clock.run_once(now=time.time() + 700) == 1
    assert [v["action"] for _k, v in world.out.sent(world.t.commands)] == ["CLEAR"]
    # The live zone load for the OpenADR VEN (its one station stale by then), no cap any more.
    (key, load), = world.out.sent(world.t.zone_load)
    assert (key, load["cap_kw"], load["stations_active"]) == ("Z1", None, 0)


def test_signals_beyond_the_bound_are_dead_lettered_and_alerted_once() -> None:
    world = World()
    world.settings = world.settings.model_copy(update={"max_events_per_zone": 2})
    world.zones.tunables = world.settings.tunables()
    world.map("S0", "Z1", 40.0)
    for i in range(5):
        world.signal("Z1", 1.0, signal_id=f"storm-{i}")
    letters = [v for _k, v in world.out.sent(world.t.deadletter)]
    assert [v["reason"] for v in letters] == ["too_many_events"] * 3
    alerts = world.out.sent(world.t.signal_alerts)
    assert [(k, v["alert_type"], v["signal_id"]) for k, v in alerts] == [
        ("Z1", "TOO_MANY_EVENTS", "storm-2")]


def test_a_station_leaving_mid_event_is_cleared_at_once_and_the_cap_reallocated() -> None:
    world = World()
    for i in range(3):
        world.map(f"S{i}", "Z1", 40.0)
    world.signal("Z1", 60.0)  # cap 60: 20 kW each
    world.out.pending.clear()
    world.mapping("S2", None)  # tombstone
    (row,) = world.deliver_picture()
    assert (row.key, row.value, row.partition) == (b"S2", None, partition_of("Z1", PARTITIONS))
    commands = world.actions()
    assert ("S2", "CLEAR", None) in commands
    sets = {k: kw for k, action, kw in commands if action == "SET"}
    assert sets == {"S0": 30.0, "S1": 30.0}  # the cap of 60 over the two left


def test_a_station_moving_to_another_partition_stays_in_its_new_zone_whatever_the_order(
) -> None:
    """The new zone's row and the old zone's tombstone are in different partitions: the row
    may be read first, and the tombstone must not take the station out of its new zone."""
    old, new = "Z1", zone_elsewhere("Z1")
    world = World()
    for i in range(2):
        world.map(f"S{i}", old, 40.0)
    world.map("S2", new, 40.0)
    world.signal(old, 40.0)  # cap 40: 20 kW each
    world.out.pending.clear()
    world.mapping("S1", new)
    tombstone, row = world.out.take(world.i.station_rows)
    assert (tombstone.value, tombstone.partition) == (None, partition_of(old, PARTITIONS))
    assert (row.key, row.partition) == (b"S1", partition_of(new, PARTITIONS))
    world.inputs.dispatch(row)  # read first: S1 moves, and leaves its old zone at once
    assert ("S1", "CLEAR", None) in world.actions()
    assert ("S0", "SET", 40.0) in world.actions()  # the old zone's cap over the one left
    world.out.pending.clear()
    world.inputs.dispatch(tombstone)
    assert set(world.zones.zones[new].load.stations) == {"S1", "S2"}
    assert set(world.zones.zones[old].load.stations) == {"S0"}
    assert world.zones.member_of["S1"] == new
    assert world.actions() == []


def test_a_commanded_station_the_read_back_no_longer_lists_is_cleared_on_warm() -> None:
    """S1 was unmapped while nobody owned the zone, and compaction took its rows and its
    tombstone away: the new owner learns it left from the controller's commands alone."""
    first = World()
    for i in range(2):
        first.map(f"S{i}", "Z1", 40.0)
    first.signal("Z1", 40.0)  # cap 40: 20 kW each
    assert first.commands() == {"S0": 20.0, "S1": 20.0}
    second = World(first.tables)
    partition = partition_of("Z1", PARTITIONS)
    second.zones.keep_only({partition}, time.time())
    second.read_back([row for row in first.log if row.key != b"S1"], partition)
    assert ("S1", "CLEAR", None) in second.actions()
    assert ("S0", "SET", 40.0) in second.actions()


def test_an_event_restored_publishes_exactly_one_report() -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.signal("Z1", 10.0)
    world.restore("Z1")
    reports = world.out.sent(world.t.dr_reports)
    assert [(k, v["signal_id"]) for k, v in reports] == [("Z1", "DR1")]
    assert reports[0][1]["baseline_kw"] == 40.0
    # ... and the dashboard's table shows it, for the worker owning the zone.
    rt = SimpleNamespace(zones=world.zones)
    (row,) = recent_reports(rt, {partition_of("Z1", PARTITIONS)})
    assert (row["zone_id"], row["signal_id"], row["stations_noncompliant"]) == ("Z1", "DR1", 0)
    assert recent_reports(rt, set()) == []


def outcomes_counted(status: str) -> float:
    return metrics.OUTCOMES.labels(status=status)._value.get()


def test_a_rejected_set_makes_the_station_uncontrollable_and_an_accept_restores_it() -> None:
    world = World()
    for i in range(3):
        world.map(f"S{i}", "Z1", 40.0)
    world.signal("Z1", 30.0)  # cap 90: 30 kW each
    commanded = {k: v for k, v in world.out.sent(world.t.commands)}
    world.out.pending.clear()

    def outcome(station_id: str, status: str) -> None:
        world.feed(world.t.outcomes, station_id, {
            "command_id": commanded[station_id]["command_id"], "station_id": station_id,
            "action": "SET", "status": status, "reason": "profile rejected", "attempt": 1,
            "ts": iso(time.time()), "gateway_id": "gw-1"})  # extra fields are ignored
        world.deliver_picture()

    rejected = outcomes_counted("Rejected")
    outcome("S0", "Rejected")
    # S0 keeps drawing 40 kW: the cap's other 50 kW go to S1 and S2.
    assert world.commands() == {"S1": 25.0, "S2": 25.0}
    assert world.zones.zones["Z1"].last_outcomes["S0"]["status"] == "Rejected"
    assert outcomes_counted("Rejected") == rejected + 1
    world.out.pending.clear()
    outcome("S0", "Accepted")  # a late accept of the same command: controllable again
    assert sum(world.commands().values()) == pytest.approx(60.0)


def test_an_outcome_repeated_in_the_rows_that_follow_is_applied_once() -> None:
    world = World()
    for i in range(2):
        world.map(f"S{i}", "Z1", 40.0)
    world.signal("Z1", 20.0)  # cap 60: 30 kW each
    command_id = dict(world.out.sent(world.t.commands))["S0"]["command_id"]
    world.out.pending.clear()
    world.feed(world.t.outcomes, "S0", {
        "command_id": command_id, "station_id": "S0", "action": "SET", "status": "Rejected",
        "reason": "profile rejected", "ts": iso(time.time())})
    rejected = outcomes_counted("Rejected")
    world.deliver_picture()
    assert world.commands() == {"S1": 20.0}
    assert outcomes_counted("Rejected") == rejected + 1
    world.out.pending.clear()
    world.reading("S0", 45.0)  # a reading: the zone's loads, no row
    (loads,) = world.deliver_picture()
    assert loads.key == loads_key("Z1").encode()
    world.mapping("S0", "Z1")  # mapped again: its next row carries the same outcome
    (row,) = world.deliver_picture()
    assert orjson.loads(row.value)["outcome"][:2] == [command_id, "Rejected"]
    assert outcomes_counted("Rejected") == rejected + 1
    assert world.commands() == {}


def test_an_outcome_for_an_unmapped_station_or_malformed_is_not_state() -> None:
    world = World()
    world.feed(world.t.outcomes, "nobody", {
        "command_id": "c1", "station_id": "nobody", "action": "SET", "status": "Accepted",
        "ts": iso(time.time())})
    world.feed(world.t.outcomes, "S1", {"station_id": "S1"})
    assert [v["reason"] for _k, v in world.out.sent(world.t.deadletter)] == [
        "command_id:missing"]
    assert world.out.sent(world.i.station_rows) == []


def reactions() -> float:
    from evgrid.metrics import DR_REACTION

    return next(s.value for m in DR_REACTION.collect() for s in m.samples
                if s.name.endswith("_count"))


async def test_a_signal_decided_at_a_later_step_is_timed_to_its_first_commands() -> None:
    world = World()
    world.mapping("S0", "Z1")
    world.deliver_picture()
    world.signal("Z1", 10.0)  # the zone knows S0 but has heard no load from it yet
    zone = world.zones.zones["Z1"]
    assert world.commands() == {} and set(zone.reacting) == {"DR1"}
    world.reading("S0", 40.0)  # its first reading reaches the zone side
    world.deliver_picture()
    world.stage.step(zone, time.time())
    (callback,) = [cb for t, _k, _v, _h, cb, _p, _s in world.out.pending
                   if t == world.t.commands]
    assert callback is not None and zone.reacting == {}
    before = reactions()
    callback(None)  # the broker acked the command
    assert reactions() == before + 1
    # An event that ends before anything was commanded leaves nothing waiting.
    world.signal("Z2", 10.0, signal_id="DR2")
    assert set(world.zones.zones["Z2"].reacting) == {"DR2"}
    world.restore("Z2", signal_id="DR2")
    assert world.zones.zones["Z2"].reacting == {}


async def test_one_turn_of_the_clock_steps_the_most_overdue_zones_within_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    zone_ids = [f"Z{i}" for i in range(1, 7)]
    for zone_id in zone_ids:
        world.map(f"S-{zone_id}", zone_id, 40.0)
        world.signal(zone_id, 10.0)
    partitions = {world.zones.zones[z].partition for z in zone_ids}
    clock = world.clock(partitions)
    now = time.time() + 1.5  # every zone due for its re-evaluation
    for i, zone_id in enumerate(zone_ids):  # Z1 the most overdue, Z6 the least
        world.zones.zones[zone_id].controller.last_step = now - 1.0 - 0.1 * (6 - i) - 0.01
    monkeypatch.setattr("evgrid.handlers.clock.STEP_BUDGET_S", 0.0)
    assert await clock.run_once(now=now) == 1  # one step per turn at least, the rest wait
    assert world.zones.zones["Z1"].controller.last_step == now
    monkeypatch.setattr("evgrid.handlers.clock.STEP_BUDGET_S", 10.0)
    assert await clock.run_once(now=now) == 5  # the others, next turn


async def test_the_gauges_of_a_large_fleet_are_swept_over_several_turns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Gauges and zone loads within a budget per turn: with none, one zone a turn, every
    zone's load published once per sweep, the totals set when the sweep is done."""
    world = World()
    zone_ids = ["Z1", "Z2", "Z3", "Z4"]
    for zone_id in zone_ids:
        world.map(f"S-{zone_id}", zone_id, 40.0)
    world.signal("Z1", 10.0)
    world.out.pending.clear()
    clock = world.clock({world.zones.zones[z].partition for z in zone_ids})
    monkeypatch.setattr("evgrid.handlers.clock.GAUGES_BUDGET_S", 0.0)
    monkeypatch.setattr(metrics.DR_ACTIVE, "set", lambda v: totals.append(v))
    totals: list[float] = []
    now = time.time()
    for turn in range(len(zone_ids)):
        await clock.run_once(now=now + 0.2 * turn)
        assert len(world.out.sent(world.t.zone_load)) == turn + 1  # one zone a turn
        assert totals == ([1] if turn == len(zone_ids) - 1 else [])
    assert sorted(k for k, _v in world.out.sent(world.t.zone_load)) == zone_ids
    await clock.run_once(now=now + 0.9)  # the next sweep starts a second after the last
    assert len(world.out.sent(world.t.zone_load)) == len(zone_ids)
