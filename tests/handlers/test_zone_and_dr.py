"""Zone stage, DR agent, mapping agent and clock without a broker: decode → core → emit."""

from __future__ import annotations

import time
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from evgrid.agents.clock import ZoneClock
from evgrid.agents.dr import DRSignals
from evgrid.agents.outcomes import CommandOutcomes
from evgrid.agents.station_config import StationConfigs
from evgrid.agents.zone import ZoneStage
from evgrid.core.types import Tunables
from evgrid.ingest.stations import StationIngest
from evgrid.state.stations import StationStore
from evgrid.state.tables_io import partition_of
from evgrid.state.zones import ZoneStore
from evgrid.timeutil import iso
from evgrid.web.views import recent_reports
from tests.fakes import PARTITIONS, RecordingPublisher, memory_tables, record, settings


class World:
    """One worker's zone side and mapping agent over in-memory tables."""

    def __init__(self, tables=None, warmup_s: float = 30.0) -> None:
        self.settings = settings(zone_warmup_s=warmup_s)
        self.t = self.settings.topics
        self.tables = tables or memory_tables()
        self.out = RecordingPublisher(self.settings)
        self.zones = ZoneStore(self.tables, Tunables(), PARTITIONS, "src", warmup_s)
        self.stage = ZoneStage(self.settings, self.zones, self.out)
        self.dr = DRSignals(self.settings, self.stage, self.out)
        store = StationStore(self.tables, Tunables(), PARTITIONS, self.t.station_zones)
        self.ingest = StationIngest(self.settings, store, self.out)
        self.configs = StationConfigs(self.settings, self.ingest, self.out)
        self.outcomes = CommandOutcomes(self.settings, store, self.out)

    def deliver_zone_messages(self) -> None:
        """What the station side queued for the zone side, through the zone stage."""
        pending, self.out.pending = self.out.pending, []
        for topic, key, value, _h, _cb in pending:
            if topic == self.t.station_load:
                self.stage.on_message(record(topic, key.decode(), value))
            else:
                self.out.pending.append((topic, key, value, _h, _cb))

    def map(self, station_id: str, zone_id: str, kw: float) -> None:
        self.configs.on_message(record(self.t.station_zones, station_id, {
            "station_id": station_id, "zone_id": zone_id, "max_station_kw": 150.0,
            "contract_max_kw": 150.0}))
        self.ingest.on_meter_value(record(self.t.meter_values, station_id, {
            "station_id": station_id, "connector_id": 1, "session_id": "s",
            "connector_type": "CCS", "power_kw": kw, "event_ts": iso(time.time())}))
        self.ingest.flush_zone_loads()
        self.deliver_zone_messages()

    def signal(self, zone_id: str, reduction_kw: float, key: str | None = None,
               signal_id: str = "DR1") -> None:
        now = time.time()
        body = {"signal_id": signal_id, "zone_id": zone_id, "signal_type": "CURTAIL",
                "target_reduction_kw": reduction_kw, "start_ts": iso(now - 1),
                "end_ts": iso(now + 600), "priority": 2, "received_ts": iso(now)}
        self.dr.on_message(record(self.t.demand_response, key or zone_id, body))

    def commands(self) -> dict[str, float]:
        return {k: v["target_power_kw"] for k, v in self.out.sent(self.t.commands)}


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
    (key, body), = world.out.sent(world.t.dr_repartition)
    assert key == "Z1"
    world.dr.on_message(record(world.t.dr_repartition, "Z1", orjson.dumps(body)))
    assert world.commands() == {"S0": 30.0}


def test_an_unknown_zone_message_kind_is_dead_lettered_not_dropped() -> None:
    world = World()
    world.stage.on_message(record(world.t.station_load, "Z1", {"kind": "gossip",
                                                              "zone_id": "Z1"}))
    (_key, letter), = world.out.sent(world.t.deadletter)
    assert letter["source_topic"] == world.t.station_load
    assert "gossip" in letter["error"] and letter["reason"].endswith("union_tag_invalid")


def test_a_tombstone_without_key_is_dead_lettered() -> None:
    world = World()
    world.configs.on_message(record(world.t.station_zones, None, None))
    (_key, letter), = world.out.sent(world.t.deadletter)
    assert letter["reason"] == "tombstone_without_key"


def test_a_new_owner_holds_signals_until_its_zone_is_warm() -> None:
    first = World()
    for i in range(2):
        first.map(f"S{i}", "Z1", 40.0)
    second = World(first.tables)  # takes the zone over after a rebalance
    partition = partition_of("Z1", PARTITIONS)
    second.zones.keep_only({partition}, time.time())
    second.signal("Z1", 20.0)
    assert second.commands() == {}  # cold: no decision on a partial picture
    app = SimpleNamespace(rebalancing=False, assignor=SimpleNamespace(
        assigned_actives=lambda: {TP(second.t.station_zones, partition)}))
    clock = ZoneClock(app, second.settings, second.stage, second.dr)
    clock.run_once()
    assert second.commands() == {}
    # The station side re-forwards its stations after the rebalance: the zone warms up.
    first.out.pending.clear()
    first.ingest.reforward({partition_of(f"S{i}", PARTITIONS) for i in range(2)})
    for topic, key, value, _h, _cb in first.out.pending:
        if topic == first.t.station_load:
            second.stage.on_message(record(topic, key.decode(), value))
    clock.run_once()
    assert sum(second.commands().values()) == pytest.approx(60.0)


def test_the_clock_steps_only_zones_of_partitions_it_actively_owns() -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.signal("Z1", 10.0)
    zone = world.zones.zones["Z1"]
    world.out.pending.clear()
    not_owned = (zone.partition + 1) % PARTITIONS
    app = SimpleNamespace(rebalancing=False, assignor=SimpleNamespace(
        assigned_actives=lambda: {TP(world.t.station_zones, not_owned)}))
    clock = ZoneClock(app, world.settings, world.stage, world.dr)
    assert clock.run_once(now=time.time() + 700) == 0  # the event ended, but not ours
    assert world.out.sent(world.t.zone_load) == []  # nor its load
    app.assignor.assigned_actives = lambda: {TP(world.t.station_zones, zone.partition)}
    clock._last_gauges = clock._last_sample = 0.0
    assert clock.run_once(now=time.time() + 700) == 1
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
    world.configs.on_message(record(world.t.station_zones, "S2", None))  # tombstone
    world.deliver_zone_messages()
    commands = [(k, v["action"], v["target_power_kw"])
                for k, v in world.out.sent(world.t.commands)]
    assert ("S2", "CLEAR", None) in commands
    sets = {k: kw for k, action, kw in commands if action == "SET"}
    assert sets == {"S0": 30.0, "S1": 30.0}  # the cap of 60 over the two left


def test_an_event_restored_publishes_exactly_one_report() -> None:
    world = World()
    world.map("S0", "Z1", 40.0)
    world.signal("Z1", 10.0)
    now = time.time()
    world.dr.on_message(record(world.t.demand_response, "Z1", {
        "signal_id": "DR1", "zone_id": "Z1", "signal_type": "RESTORE",
        "start_ts": iso(now - 1), "end_ts": iso(now + 600), "priority": 2,
        "received_ts": iso(now + 1)}))
    reports = world.out.sent(world.t.dr_reports)
    assert [(k, v["signal_id"]) for k, v in reports] == [("Z1", "DR1")]
    assert reports[0][1]["baseline_kw"] == 40.0
    # ... and the dashboard's table shows it, for the worker owning the zone.
    rt = SimpleNamespace(zones=world.zones)
    (row,) = recent_reports(rt, {partition_of("Z1", PARTITIONS)})
    assert (row["zone_id"], row["signal_id"], row["stations_noncompliant"]) == ("Z1", "DR1", 0)
    assert recent_reports(rt, set()) == []


def test_a_rejected_set_makes_the_station_uncontrollable_and_an_accept_restores_it() -> None:
    world = World()
    for i in range(3):
        world.map(f"S{i}", "Z1", 40.0)
    world.signal("Z1", 30.0)  # cap 90: 30 kW each
    commanded = {k: v for k, v in world.out.sent(world.t.commands)}
    world.out.pending.clear()

    def outcome(station_id: str, status: str) -> None:
        world.outcomes.on_message(record(world.t.outcomes, station_id, {
            "command_id": commanded[station_id]["command_id"], "station_id": station_id,
            "action": "SET", "status": status, "reason": "profile rejected", "attempt": 1,
            "ts": iso(time.time()), "gateway_id": "gw-1"}))  # extra fields are ignored
        world.deliver_zone_messages()

    outcome("S0", "Rejected")
    # S0 keeps drawing 40 kW: the cap's other 50 kW go to S1 and S2.
    assert world.commands() == {"S1": 25.0, "S2": 25.0}
    (_zone, view), = [(z, world.zones.zones[z]) for z in ("Z1",)]
    assert view.last_outcomes["S0"]["status"] == "Rejected"
    world.out.pending.clear()
    outcome("S0", "Accepted")  # a late accept of the same command: controllable again
    assert sum(world.commands().values()) == pytest.approx(60.0)


def test_an_outcome_for_an_unmapped_station_or_malformed_is_not_state() -> None:
    world = World()
    world.outcomes.on_message(record(world.t.outcomes, "nobody", {
        "command_id": "c1", "station_id": "nobody", "action": "SET", "status": "Accepted",
        "ts": iso(time.time())}))
    world.outcomes.on_message(record(world.t.outcomes, "S1", {"station_id": "S1"}))
    assert [v["reason"] for _k, v in world.out.sent(world.t.deadletter)] == [
        "command_id:missing"]
    assert world.out.sent(world.t.station_load) == []


def reactions() -> float:
    from evgrid.metrics import DR_REACTION

    return next(s.value for m in DR_REACTION.collect() for s in m.samples
                if s.name.endswith("_count"))


def test_a_signal_decided_at_a_later_step_is_timed_to_its_first_commands() -> None:
    world = World()
    world.configs.on_message(record(world.t.station_zones, "S0", {
        "station_id": "S0", "zone_id": "Z1", "max_station_kw": 150.0,
        "contract_max_kw": 150.0}))
    world.deliver_zone_messages()
    world.signal("Z1", 10.0)  # the zone knows S0 but has heard no load from it yet
    zone = world.zones.zones["Z1"]
    assert world.commands() == {} and set(zone.reacting) == {"DR1"}
    world.map("S0", "Z1", 40.0)  # its first reading reaches the zone side
    world.stage.step(zone, time.time())
    (callback,) = [cb for t, _k, _v, _h, cb in world.out.pending
                   if t == world.t.commands]
    assert callback is not None and zone.reacting == {}
    before = reactions()
    callback(None)  # the broker acked the command
    assert reactions() == before + 1
    # An event that ends before anything was commanded leaves nothing waiting.
    world.signal("Z2", 10.0, signal_id="DR2")
    assert set(world.zones.zones["Z2"].reacting) == {"DR2"}
    world.dr.on_message(record(world.t.demand_response, "Z2", {
        "signal_id": "DR2", "zone_id": "Z2", "signal_type": "RESTORE",
        "start_ts": iso(time.time() - 1), "end_ts": iso(time.time() + 600), "priority": 2,
        "received_ts": iso(time.time())}))
    assert world.zones.zones["Z2"].reacting == {}
