"""Stations leaving and joining mid-event, gateway outcomes, bounded events, persisted layout."""

from __future__ import annotations

import orjson
import pytest

from evgrid.core.control import ZoneController, profile_id_for
from evgrid.core.lifecycle import REFUSED, EventBook
from evgrid.core.types import Tunables

from .drsim import T0, SimZone, clears, sets, signal

FOUR = {"S1": 50.0, "S2": 50.0, "S3": 50.0, "S4": 50.0}


# -- zone changes mid-event ---------------------------------------------------------------------

def test_station_leaving_a_curtailed_zone_is_cleared_at_once_and_cap_reallocated() -> None:
    z = SimZone(FOUR)
    d = z.send(signal("E1", kw=80.0), T0)  # cap 120: 30 each
    assert sets(d) == pytest.approx({s: 30.0 for s in FOUR})
    del z.loads["S4"]
    d = z.obey(z.ctl.on_station_removed("S4", z.rows(T0 + 5), T0 + 5))
    clear = [c for c in d.commands if c.action == "CLEAR"]
    assert [c.station_id for c in clear] == ["S4"]
    assert clear[0].profile_id == profile_id_for("E1", "S4") and clear[0].signal_id == "E1"
    assert sets(d) == pytest.approx({"S1": 40.0, "S2": 40.0, "S3": 40.0})
    assert "S4" not in z.ctl.commanded and z.ctl.view(T0 + 5)["stations_commanded"] == 3
    # When the event ends, S4 is not cleared a second time.
    d = z.send(signal("E1", "RESTORE", received=T0 + 10), T0 + 10)
    assert sorted(clears(d)) == ["S1", "S2", "S3"]


def test_removed_station_passed_in_the_mapping_is_still_left_out() -> None:
    z = SimZone(FOUR)
    z.send(signal("E1", kw=80.0), T0)
    d = z.ctl.on_station_removed("S4", z.rows(T0 + 5), T0 + 5)  # S4 still in the rows
    assert clears(d) == ["S4"] and "S4" not in sets(d)


def test_removing_a_station_with_no_event_decides_nothing() -> None:
    z = SimZone(FOUR)
    assert not z.ctl.on_station_removed("S4", z.rows(T0), T0)


def test_station_joining_mid_event_is_allocated_like_a_new_session() -> None:
    z = SimZone(FOUR)
    z.send(signal("E1", kw=80.0), T0)  # cap 120
    z.uncurtailed["S5"] = z.loads["S5"] = 80.0  # re-switched feeder brings a station
    d = z.tick(T0 + 1)
    assert "S5" in sets(d)
    for i in range(2, 10):
        z.tick(T0 + i)
    assert sum(z.loads.values()) == pytest.approx(120.0, abs=5 * z.t.dead_band_kw)
    assert z.loads["S5"] == pytest.approx(120.0 * 80 / 280, abs=z.t.dead_band_kw)


# -- command outcomes ---------------------------------------------------------------------------

def test_rejected_set_makes_station_uncontrollable_until_accepted() -> None:
    z = SimZone(FOUR)
    d = z.send(signal("E1", kw=80.0), T0)
    s4 = next(c for c in d.commands if c.station_id == "S4")
    z.loads["S4"] = 50.0  # the charger refused: it keeps drawing
    z.disobey.add("S4")
    d = z.obey(z.ctl.on_outcome("S4", s4.command_id, "Rejected", T0 + 2, z.rows(T0 + 2)))
    assert sets(d) == pytest.approx({"S1": 70 / 3, "S2": 70 / 3, "S3": 70 / 3}, abs=1e-3)
    assert z.ctl.view(T0 + 2)["stations_uncontrollable"] == 1
    assert sum(z.loads.values()) == pytest.approx(120.0, abs=1e-2)
    # A duplicate outcome, an old command's outcome and Superseded change nothing.
    assert not z.ctl.on_outcome("S4", s4.command_id, "Timeout", T0 + 3, z.rows(T0 + 3))
    assert not z.ctl.on_outcome("S4", "someone-else", "Accepted", T0 + 3, z.rows(T0 + 3))
    assert not z.ctl.on_outcome("S1", "x", "Rejected", T0 + 3, z.rows(T0 + 3))
    assert not z.ctl.on_outcome("S1", "x", "Superseded", T0 + 3, z.rows(T0 + 3))
    # A later Accepted (the gateway's retry got through): controllable again.
    z.disobey.clear()
    z.loads["S4"] = s4.target_power_kw  # and applied the limit it was given
    d = z.obey(z.ctl.on_outcome("S4", s4.command_id, "Accepted", T0 + 4, z.rows(T0 + 4)))
    assert z.ctl.view(T0 + 4)["stations_uncontrollable"] == 0
    assert sets(d) == pytest.approx({"S1": 30.0, "S2": 30.0, "S3": 30.0})  # over four again
    for i in range(5, 9):
        z.tick(T0 + i)
    assert z.loads == pytest.approx({s: 30.0 for s in FOUR}, abs=z.t.dead_band_kw)


def test_outcome_without_stations_asks_for_an_immediate_step() -> None:
    z = SimZone(FOUR)
    d = z.send(signal("E1", kw=80.0), T0)
    s1 = next(c for c in d.commands if c.station_id == "S1")
    z.disobey.add("S1")
    z.loads["S1"] = 50.0
    assert not z.ctl.on_outcome("S1", s1.command_id, "Offline", T0 + 0.2)
    assert z.ctl.next_deadline(T0 + 0.2) == T0 + 0.2
    d = z.tick(T0 + 0.3)
    assert set(sets(d)) == {"S2", "S3", "S4"}
    assert sum(sets(d).values()) == pytest.approx(70.0, abs=1e-2)
    assert z.ctl.next_deadline(T0 + 0.3) == pytest.approx(T0 + 1.3)


def test_accepted_and_superseded_change_nothing_for_a_controllable_station() -> None:
    z = SimZone(FOUR)
    d = z.send(signal("E1", kw=80.0), T0)
    s1 = next(c for c in d.commands if c.station_id == "S1")
    assert not z.ctl.on_outcome("S1", s1.command_id, "Accepted", T0 + 1, z.rows(T0 + 1))
    assert not z.ctl.on_outcome("S1", s1.command_id, "Superseded", T0 + 1, z.rows(T0 + 1))
    assert z.ctl.view(T0 + 1)["stations_uncontrollable"] == 0


# -- bounded events -----------------------------------------------------------------------------

def test_signals_beyond_the_bound_are_refused_once_per_episode() -> None:
    z = SimZone(FOUR, Tunables(max_events_per_zone=3))
    for i in range(3):
        d = z.send(signal(f"E{i}", kw=10.0, start=T0 + 100), T0)
        assert not d.refused
    d = z.send(signal("E3", kw=10.0, start=T0 + 100), T0)
    assert [(r.signal_id, r.reason, r.first_in_episode) for r in d.refused] == [
        ("E3", REFUSED, True)
    ]
    assert "3" in d.refused[0].detail and not d.commands and not d.statuses
    d = z.send(signal("E4", kw=10.0, start=T0 + 100), T0 + 1)
    assert [r.first_in_episode for r in d.refused] == [False]
    assert {e["signal_id"] for e in z.ctl.view(T0 + 1)["events"]} == {"E0", "E1", "E2"}
    # An update of a held event is no new event: accepted.
    assert not z.send(signal("E0", kw=20.0, start=T0 + 100, received=T0), T0 + 2).refused
    z.send(signal("E0", "RESTORE", received=T0 + 3), T0 + 3)
    assert not z.send(signal("E5", kw=10.0, start=T0 + 100), T0 + 4).refused
    d = z.send(signal("E6", kw=10.0, start=T0 + 100), T0 + 5)
    assert [r.first_in_episode for r in d.refused] == [True]  # a new episode


def test_ended_events_are_kept_for_retention_but_never_iterated() -> None:
    book = EventBook(max_live=2)
    for i in range(1000):
        book.receive(signal(f"E{i}", kw=1.0, start=T0 + i, end=T0 + i + 1), T0 + i)
        book.advance(T0 + i + 1, lambda: 100.0)
        assert len(book.live) <= 2
    assert len(book.live) == 0 and len(book.ended) == 1000
    assert book.ordered() == [] and book.next_deadline() is None
    # A late duplicate of an ended event is ignored, not revived.
    assert book.receive(signal("E5", kw=1.0, received=T0 + 5000), T0 + 5000) == "ignored"
    # Event i ended at T0 + i + 1: those ended over 600 s before T0 + 1500 go, oldest first.
    assert book.purge(T0 + 1500, 600.0) == 899
    assert next(iter(book.ended)) == "E899"


# -- the persisted layout -----------------------------------------------------------------------

def test_state_layout_is_named_plain_data_and_round_trips_mid_event() -> None:
    z = SimZone(FOUR)
    d = z.send(signal("E1", pct=40.0), T0)
    s2 = next(c for c in d.commands if c.station_id == "S2")
    z.disobey.add("S2")
    z.loads["S2"] = 50.0
    z.obey(z.ctl.on_outcome("S2", s2.command_id, "CallError", T0 + 1, z.rows(T0 + 1)))
    z.tick(T0 + 2)
    z.send(signal("E2", cap=10.0, start=T0 + 50), T0 + 3)
    state = z.ctl.to_dict()
    assert set(state) == {
        "zone_id", "events", "stations", "shortfall_kw", "last_step", "wake_at", "refusing",
        "published", "reports", "sites", "frequency",
    }
    assert set(state["events"]) == {"live", "ended"}
    assert set(state["stations"][0]) == {
        "station_id", "seq", "commanded", "compliance", "uncontrollable_since", "held_kw",
    }
    s2_state = next(s for s in state["stations"] if s["station_id"] == "S2")
    assert s2_state["uncontrollable_since"] == T0 + 1
    assert s2_state["held_kw"] == [[1, 50.0]]
    wire = orjson.loads(orjson.dumps(state))
    assert wire == state  # nothing but JSON types
    twin = ZoneController.from_dict(wire, z.t)
    assert twin.to_dict() == state
    for i in range(4, 120):
        now = T0 + i
        a = z.ctl.on_tick(z.rows(now), now)
        b = twin.on_tick(z.rows(now), now)
        assert a == b
        z.obey(a)
    assert z.ctl.to_dict() == twin.to_dict()


def test_bound_and_report_topic_come_from_the_one_settings_object() -> None:
    from evgrid.settings import WorkerSettings
    from evgrid.topics import topic_specs

    s = WorkerSettings.from_env({"EVGRID_MAX_EVENTS_PER_ZONE": "5",
                           "EVGRID_TOPIC_DR_REPORTS": "site.dr_reports"})
    assert s.tunables().max_events_per_zone == 5
    assert ZoneController("Z", s.tunables()).book.max_live == 5
    assert WorkerSettings().max_events_per_zone == 32 == Tunables().max_events_per_zone
    spec = next(t for t in topic_specs(s) if t.name == "site.dr_reports")
    assert not spec.copartitioned
