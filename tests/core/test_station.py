"""Station state: latest reading per connector, live load, idle connectors, storage."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading, Tunables
from evgrid.core.windows import WindowStat
from tests.core.test_windows import OLDER_LAYOUT, T0


def r(cid: int, kw: float, t: float, ctype: str = "CCS", sid: str | None = "s"):
    return ConnectorReading(cid, ctype, kw, T0 + t, sid)


def test_constant_50kw_every_10s_for_2_minutes() -> None:
    s = StationState(keep_windows=10)
    for i in range(13):  # t = 0, 10, ..., 120
        assert s.apply(r(1, 50.0, 10 * i))
    assert s.load_kw(T0 + 120, 120) == 50.0
    s.windows.advance(T0 + 10_000)
    full = [w for w in s.windows.closed if w.window_end <= T0 + 120]
    assert [w.window_start - T0 for w in full] == [0.0, 60.0]
    assert all(w.total_power_kw == pytest.approx(50.0) for w in full)  # not the seed's 300


def test_stale_connector_counts_zero() -> None:
    s = StationState()
    s.apply(r(1, 40.0, 0))
    s.apply(r(2, 10.0, 100))
    assert s.load_kw(T0 + 110, 120) == 50.0
    assert s.load_kw(T0 + 120, 120) == 50.0  # exactly at the limit: still live
    assert s.load_kw(T0 + 121, 120) == 10.0
    assert s.load_kw(T0 + 500, 120) == 0.0


def test_two_connectors_summed() -> None:
    s = StationState()
    s.apply(r(1, 30.0, 0))
    s.apply(r(2, 11.0, 1, "Type2", "t"))
    assert s.load_kw(T0 + 2, 120) == pytest.approx(41.0)
    s.apply(r(1, 20.0, 3))  # replaces connector 1's reading, does not add
    assert s.load_kw(T0 + 4, 120) == pytest.approx(31.0)


def test_out_of_order_and_duplicate_readings_change_nothing() -> None:
    s = StationState()
    assert s.apply(r(1, 40.0, 10))
    before = s.to_dict()
    assert not s.apply(r(1, 99.0, 5))  # older
    assert not s.apply(r(1, 99.0, 10))  # same event_ts: a duplicate delivery
    assert s.to_dict() == before
    assert s.connectors[1].power_kw == 40.0


def test_reading_too_late_for_its_window_still_updates_the_load() -> None:
    s = StationState(allowed_lateness_s=30)
    s.apply(r(1, 10.0, 5))
    s.apply(r(1, 10.0, 95))  # closes [0, 60)
    assert s.apply(r(2, 7.0, 10, "Type2", "t"))  # connector 2's first reading: newest for it
    assert s.late_dropped == 1
    assert s.load_kw(T0 + 100, 120) == pytest.approx(17.0)
    assert s.windows.closed[0].total_power_kw == pytest.approx(10.0)


def test_forget_idle_drops_only_silent_connectors() -> None:
    s = StationState()
    s.apply(r(1, 0.0, 0))
    s.apply(r(2, 5.0, 50_000))
    assert s.forget_idle(T0 + 86_000, 86_400) == 0
    assert s.forget_idle(T0 + 86_401, 86_400) == 1
    assert list(s.connectors) == [2]
    assert s.apply(r(1, 3.0, 86_500))  # a forgotten connector comes back as new


def test_round_trip_through_orjson() -> None:
    s = StationState()
    for i in range(20):
        s.apply(r(1 + i % 2, 10.0 + i, 7 * i, sid=None if i % 3 else "x"))
    s.apply(ConnectorReading(3, "Type2", 7.4, T0 + 200, "y", 32.0, 230.0, 12.5, 80))
    back = StationState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    assert back.to_dict() == s.to_dict()
    assert back.connectors == s.connectors
    assert back.windows.snapshot() == s.windows.snapshot()
    assert back.late_dropped == s.late_dropped


def test_reads_the_older_layout() -> None:
    old = {
        "c": [r(1, 22.0, 0).to_dict()],
        "w": OLDER_LAYOUT,
        "late": 2,
    }
    s = StationState.from_dict(orjson.loads(orjson.dumps(old)))
    assert s.connectors[1].power_kw == 22.0 and s.late_dropped == 2
    assert not s.apply(r(1, 1.0, 0))
    assert s.apply(r(1, 1.0, 10))


def test_built_from_tunables() -> None:
    t = Tunables(window_s=30.0, allowed_lateness_s=10.0, stale_after_s=45.0,
                 future_tolerance_s=20.0)
    s = StationState.from_tunables(t)
    assert s.clock_tolerance_s == 20.0
    assert (s.windows.window_s, s.windows.allowed_lateness_s, s.windows.stale_after_s) == (
        30.0,
        10.0,
        45.0,
    )


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 400), st.floats(0, 350)), max_size=60))
def test_load_is_latest_per_connector_whatever_the_delivery_order(readings) -> None:
    s = StationState()
    latest: dict[int, tuple[int, float]] = {}
    for cid, t, kw in readings:
        accepted = s.apply(r(cid, kw, t))
        prev = latest.get(cid)
        assert accepted == (prev is None or t > prev[0])
        if accepted:
            latest[cid] = (t, kw)
    now = T0 + 400
    expected = sum(kw for t, kw in latest.values() if now - (T0 + t) <= 120)
    assert s.load_kw(now, 120) == pytest.approx(expected)


def test_liveness_and_forgetting_go_by_arrival_time() -> None:
    s = StationState()
    behind = 3 * 3600.0
    assert s.apply(ConnectorReading(1, "CCS", 30.0, T0 - behind, "s"), T0)
    assert s.apply(ConnectorReading(2, "CCS", 5.0, T0 + 10, "s"), T0 - 500)  # heard long ago
    assert s.load_kw(T0 + 100, 120) == 30.0
    assert s.forget_idle(T0 + 86_000, 86_400) == 1 and list(s.connectors) == [1]


def test_stored_layout_names_every_field() -> None:
    """The state layer versions this layout: it must be explicit, never positional."""
    s = StationState()
    for i in range(12):
        s.apply(r(1 + i % 2, 10.0 + i, 20 * i, sid=f"x{i % 3}"))
    d = orjson.loads(orjson.dumps(s.to_dict()))
    assert set(d) == {"connectors", "windows", "clock", "clock_tolerance_s", "late_dropped",
                      "clock_resets"}
    assert set(d["connectors"][0]) == {
        "connector_id", "connector_type", "power_kw", "event_ts", "session_id", "current_a",
        "voltage_v", "energy_kwh", "soc_percent", "arrival_ts"}
    w = d["windows"]
    assert set(w) == {"window_s", "allowed_lateness_s", "stale_after_s", "keep", "watermark",
                      "closed_end", "open", "carry", "closed"}
    assert w["open"] and set(w["open"][0]) == {"window_start", "connectors"}
    assert set(w["open"][0]["connectors"][0]) == {
        "connector_id", "first_ts", "last_ts", "power_kw", "session_id", "energy_kws",
        "covered_s", "max_power_kw", "session_ids"}
    assert w["carry"] and set(w["carry"][0]) == {"connector_id", "held_since", "power_kw",
                                                 "session_id"}
    assert w["closed"] and set(w["closed"][0]) == set(WindowStat.__slots__)
