"""The event book, cap resolution, and the pieces the controller is built from."""

from __future__ import annotations

import pytest

from evgrid.core.control import command_id, profile_id_for
from evgrid.core.control.commands import Commanded, Source
from evgrid.core.control.demand import capture, effective_load, uncurtailed_kw
from evgrid.core.control.diff import needs_command, needs_limit
from evgrid.core.lifecycle import (
    ACTIVE,
    ENDED,
    IGNORED,
    NEW,
    REPLACED,
    RESTORED,
    SCHEDULED,
    UNKNOWN,
    EventBook,
    resolve_cap_kw,
)
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables
from tests.core.control.drsim import T0, signal


def test_ids_keep_the_scheme_replays_depend_on() -> None:
    """Pinned to the values the pre-split controller produced: a worker upgraded mid-event
    must re-issue the same ids."""
    assert command_id("Z1", "DR1", "S01", 1, "SET", 42.0) == "e53b13636af8548648c7e1c8c6aca684"
    assert command_id("Z1", "DR1", "S01", 2, "CLEAR", None) == "548d31878239d128cb35dfaf576b4549"
    assert profile_id_for("DR1", "S01") == 299701652


@pytest.mark.parametrize(
    ("kw", "pct", "cap", "baseline", "expected"),
    [
        (40.0, None, None, 200.0, 160.0),
        (250.0, None, None, 200.0, 0.0),
        (None, 25.0, None, 200.0, 150.0),
        (None, 100.0, None, 200.0, 0.0),
        (None, 0.0, None, 200.0, 200.0),
        (None, None, 120.0, 200.0, 120.0),
        (None, None, 300.0, 200.0, 300.0),  # a cap above the load curtails nothing
        (None, None, None, 200.0, 200.0),
    ],
)
def test_cap_resolution(kw, pct, cap, baseline, expected) -> None:
    assert resolve_cap_kw(signal(kw=kw, pct=pct, cap=cap), baseline) == pytest.approx(expected)


def test_book_receive_outcomes() -> None:
    book = EventBook()
    assert book.receive(signal("E", "RESTORE"), T0) == UNKNOWN
    assert book.receive(signal("E", kw=10.0, start=T0 + 10), T0) == NEW
    assert book.receive(signal("E", kw=20.0, start=T0 + 10, received=T0 - 61), T0) == IGNORED
    assert book.receive(signal("E", kw=20.0, start=T0 + 10, received=T0), T0) == REPLACED
    assert book.advance(T0 + 10, lambda: 100.0)[0].state == ACTIVE
    ev = book.get("E")
    assert ev is not None and ev.baseline_kw == 100.0 and ev.cap_kw == 80.0
    # An update moves the target, never the baseline.
    book.receive(signal("E", pct=50.0, start=T0 + 10, received=T0 + 11), T0 + 11)
    book.advance(T0 + 12, lambda: 1.0)
    assert ev.baseline_kw == 100.0 and ev.cap_kw == 50.0
    assert book.receive(signal("E", "RESTORE", received=T0 + 20), T0 + 20) == RESTORED
    assert (ev.state, ev.ended_at, ev.ended_by) == (ENDED, T0 + 20, "RESTORE")
    assert book.receive(signal("E", "RESTORE", received=T0 + 21), T0 + 21) == IGNORED
    assert book.governing() is None and book.next_deadline() is None


def test_restore_of_a_scheduled_event_and_deadlines() -> None:
    book = EventBook()
    book.receive(signal("A", kw=1.0, start=T0 + 10, end=T0 + 20), T0)
    book.receive(signal("B", kw=1.0, start=T0 + 5, end=T0 + 50), T0)
    assert book.next_deadline() == T0 + 5
    book.advance(T0 + 5, lambda: 10.0)
    assert book.next_deadline() == T0 + 10
    book.receive(signal("A", "RESTORE"), T0 + 6)
    a = book.get("A")
    assert a is not None and a.state == ENDED and a.baseline_kw is None
    assert book.next_deadline() == T0 + 50
    assert [e.state for e in book.ordered()] == [ACTIVE]


def test_an_event_starting_as_another_ends_is_activated_after_the_end() -> None:
    book = EventBook()
    book.receive(signal("A", kw=1.0, end=T0 + 10), T0)
    book.receive(signal("B", kw=1.0, start=T0 + 10, end=T0 + 20), T0)
    book.advance(T0, lambda: 10.0)
    seen: list[list[str]] = []

    def baseline() -> float:
        seen.append([e.signal_id for e in book.active()])
        return 10.0

    changed = book.advance(T0 + 10, baseline)
    assert [(e.signal_id, e.state) for e in changed] == [("A", ENDED), ("B", ACTIVE)]
    assert seen == [["B"]]  # A was already ended when B's baseline was taken


def test_book_round_trip_keeps_live_and_ended_order() -> None:
    book = EventBook(max_live=4)
    for i in range(3):
        book.receive(signal(f"E{i}", kw=1.0, start=T0 + i, end=T0 + 10 + i), T0)
    book.advance(T0 + 11, lambda: 5.0)
    twin = EventBook.from_dict(book.to_dict(), max_live=4)
    assert twin.to_dict() == book.to_dict()
    assert list(twin.ended) == ["E0", "E1"] and list(twin.live) == ["E2"]
    assert twin.get("E2").state == ACTIVE and twin.get("E0").state == ENDED  # type: ignore[union-attr]
    assert SCHEDULED not in {e.state for e in twin.ordered()}


def _commanded(signal_id: str, target: float) -> Commanded:
    return Commanded(signal_id, 2, T0 + 60, target, 1, "station", 1, (1,), "c", T0)


def test_dead_band_decides_who_gets_a_new_command() -> None:
    assert needs_command(None, "E", 10.0, 1.0)
    assert not needs_command(_commanded("E", 10.0), "E", 11.0, 1.0)
    assert needs_command(_commanded("E", 10.0), "E", 11.01, 1.0)
    assert needs_command(_commanded("OTHER", 10.0), "E", 10.0, 1.0)  # another event governs



def test_a_site_limits_profile_is_resent_at_half_its_validity() -> None:
    t = Tunables(site_profile_valid_s=600.0)
    site = Source("site:S", 3, T0 + 600, "SITE")
    prev = Commanded("site:S", 3, T0 + 60, 10.0, 1, "station", 1, (1,), "c", T0 - 540,
                     reason="SITE")  # valid until T0 + 60: less than half left
    assert needs_limit(prev, site, 10.0, (), T0, t)
    fresh = Commanded("site:S", 3, T0 + 600, 10.0, 1, "station", 1, (1,), "c", T0,
                      reason="SITE")
    assert not needs_limit(fresh, site, 10.0, (), T0 + 299, t)
    assert needs_limit(fresh, site, 10.0, (), T0 + 301, t)
    dr = Source("E", 2, T0 + 60, "DR")  # a DR profile ends with its event: never renewed
    assert not needs_limit(_commanded("E", 10.0), dr, 10.0, (), T0 + 59, t)


def _row(station_id: str, kw: float, ts: float) -> StationRow:
    return StationRow(StationConfig(station_id, "Z", 100.0, 100.0),
                      (ConnectorReading(1, "CCS", kw, ts, "s"),))


def test_demand_capture_and_uncurtailed_load() -> None:
    stations = {"a": _row("a", 30.0, T0), "b": _row("b", 0.0, T0), "c": _row("c", 20.0, T0)}
    held: dict = {}
    capture(held, stations, {"c": object()}, T0, 120.0)
    assert held == {"a": {1: 30.0}}  # idle and commanded stations are not captured
    stations["a"] = _row("a", 10.0, T0)  # curtailed
    stations["b"] = _row("b", 15.0, T0)  # a new session, not held yet
    assert uncurtailed_kw(held, stations, T0, 120.0) == 30.0 + 15.0 + 20.0
    capture(held, stations, {}, T0, 120.0)
    assert held["a"] == {1: 30.0} and held["b"] == {1: 15.0}


def test_effective_load_of_a_silent_commanded_station() -> None:
    row = _row("a", 30.0, T0)
    assert effective_load(row, 10.0, T0 + 10, 120.0) == 30.0
    assert effective_load(row, 10.0, T0 + 500, 120.0) == 30.0  # stale: last load is higher
    assert effective_load(row, 50.0, T0 + 500, 120.0) == 50.0  # stale: target is higher
    assert effective_load(row, None, T0 + 500, 120.0) == 0.0  # not commanded: stale is 0
