"""Chargers' clocks: future stamps, arrival-time liveness, clock resets, offsets,
windows on corrected time, one CLOCK_SKEW alert per episode."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.clock import StationClock, in_future, is_clock_reset
from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading, StationConfig, StationRow
from evgrid.core.zone import ZoneLoad

T0 = 1_800_000_000.0  # a window boundary
TOL = 60.0  # future_tolerance_s
SKEW = 300.0  # clock_skew_alert_s


class Agent:
    """What the station agent does with one reading, in core calls only."""

    def __init__(self) -> None:
        self.state = StationState(keep_windows=100)
        self.dead: list[str] = []
        self.alerts: list[dict] = []

    def hear(self, kw: float, event_ts: float, arrival_ts: float, cid: int = 1) -> bool:
        reading = ConnectorReading(cid, "CCS", kw, event_ts, "s1")
        if in_future(event_ts, arrival_ts, TOL):
            self.state.note_future(event_ts, arrival_ts)
            self.dead.append("event_ts_in_future")
            accepted = False
        else:
            accepted = self.state.apply(reading, arrival_ts)
        alert = self.state.clock.skew_alert("ST1", arrival_ts, SKEW)
        if alert is not None:
            self.alerts.append(alert)
        return accepted


def test_one_reading_stamped_an_hour_ahead_does_not_freeze_the_station() -> None:
    """50 kW stamped +1 h, then correct readings at 10 kW -> the station shows 10."""
    a = Agent()
    assert not a.hear(50.0, T0 + 3600, T0)
    for i in range(1, 7):
        assert a.hear(10.0, T0 + 10 * i, T0 + 10 * i + 0.3)
    assert a.dead == ["event_ts_in_future"]
    assert a.state.load_kw(T0 + 61, 120) == 10.0
    assert 0.0 < a.state.clock_offset_s() < 1.0  # the one bad stamp did not move the median
    assert a.alerts == []


def test_a_stamp_within_the_tolerance_is_state() -> None:
    assert not in_future(T0 + 60, T0, TOL)
    assert in_future(T0 + 60.5, T0, TOL)


def test_charger_three_hours_behind_keeps_its_load_its_windows_and_alerts_once() -> None:
    a = Agent()
    behind = 3 * 3600.0
    for i in range(60):  # 10 minutes, a reading every 10 s, 22 kW
        arrival = T0 + 10 * i + 0.2
        assert a.hear(22.0, arrival - behind - 0.2, arrival)
    now = T0 + 595
    assert a.state.load_kw(now, 120) == 22.0  # by event time it would be 3 h stale: 0
    assert a.state.clock_offset_s() == pytest.approx(behind + 0.2)
    windows = a.state.windows
    windows.advance(now + 300)
    closed = windows.closed
    # placed on the corrected time line: ten real-time minutes of 22 kW windows
    assert [w.window_start - T0 for w in closed][:10] == [60.0 * k for k in range(10)]
    assert all(w.total_power_kw == pytest.approx(22.0) for w in closed[:10])
    assert a.state.late_dropped == 0
    assert [x["alert_type"] for x in a.alerts] == ["CLOCK_SKEW"]
    assert a.state.clock_summary() == {
        "clock_offset_s": pytest.approx(behind + 0.2),
        "clock_correction_s": pytest.approx(behind + 0.2),
        "clock_skew": True,
        "clock_resets": 0,
        "late_dropped": 0,
    }
    assert a.alerts[0]["station_id"] == "ST1"
    assert a.alerts[0]["clock_offset_s"] == pytest.approx(behind + 0.2)
    # the clock is fixed (NTP): the skew clears once, and the readings still count
    for i in range(60, 80):
        arrival = T0 + 10 * i + 0.2
        assert a.hear(22.0, arrival - 0.2, arrival)
    assert [x["alert_type"] for x in a.alerts] == ["CLOCK_SKEW", "CLOCK_SKEW_CLEARED"]
    assert a.state.load_kw(T0 + 795, 120) == 22.0


def test_zone_row_counts_a_charger_by_when_it_was_heard() -> None:
    behind = 3 * 3600.0
    reading = ConnectorReading(1, "CCS", 40.0, T0 - behind, "s", arrival_ts=T0)
    row = StationRow(StationConfig("ST1", "Z1", 100.0, 100.0), (reading,))
    assert row.load_kw(T0 + 100, 120) == 40.0
    assert row.load_kw(T0 + 121, 120) == 0.0  # not heard from for longer than the limit
    assert row.last_heard_ts() == T0
    back = StationRow.from_dict(orjson.loads(orjson.dumps(row.to_dict())))
    assert back.connectors[0].arrival_ts == T0
    zone = ZoneLoad("Z1")
    zone.upsert(back, T0 + 5, 120)
    assert zone.summary(T0 + 5, 120)["zone_total_power_kw"] == 40.0


@pytest.mark.parametrize("reboot_s", [30.0, 90.0])
def test_clock_jumping_back_after_a_reboot_does_not_freeze_the_connector(reboot_s) -> None:
    a = Agent()
    t = 0.0
    for _ in range(30):  # five minutes at 10 kW with a right clock
        t += 10
        a.hear(10.0, T0 + t, T0 + t + 0.2)
    last_before = t
    t += reboot_s
    first_after = t
    accepted_at = None
    while t < first_after + 300:  # after the reboot the clock is an hour behind: 20 kW
        if a.hear(20.0, T0 + t - 3600, T0 + t + 0.2) and accepted_at is None:
            accepted_at = t
        t += 10
    assert accepted_at is not None
    # frozen at most the tolerance after the reboot (+ one reading interval)
    assert accepted_at - last_before <= max(reboot_s, TOL) + 10
    assert a.state.load_kw(T0 + t, 120) == 20.0
    assert a.state.clock_resets == 1
    assert a.state.clock_offset_s() == pytest.approx(3600.2)
    # windows carry on along real time after the reset
    a.state.windows.advance(T0 + t + 600)
    late = [w for w in a.state.windows.closed if w.window_start >= T0 + accepted_at + 60]
    assert late and all(w.total_power_kw == pytest.approx(20.0) for w in late)


def test_a_redelivered_reading_is_never_a_clock_reset() -> None:
    s = StationState()
    first = ConnectorReading(1, "CCS", 10.0, T0, "s")
    assert s.apply(first, T0 + 1)
    assert s.apply(ConnectorReading(1, "CCS", 12.0, T0 + 300, "s"), T0 + 301)
    # the first reading again, hours later, with its original arrival (the record timestamp)
    assert not s.apply(ConnectorReading(1, "CCS", 10.0, T0, "s"), T0 + 1)
    assert s.connectors[1].power_kw == 12.0 and s.clock_resets == 0
    assert not is_clock_reset(T0 + 300, T0 + 301, T0 + 250, T0 + 302, TOL)  # plain reorder


def test_charger_ahead_is_dead_lettered_but_measured_and_alerted() -> None:
    a = Agent()
    for i in range(10):
        a.hear(30.0, T0 + 10 * i + 7200, T0 + 10 * i)
    assert a.dead == ["event_ts_in_future"] * 10
    assert a.state.connectors == {}
    assert a.state.clock_offset_s() == pytest.approx(-7200.0)
    assert [x["alert_type"] for x in a.alerts] == ["CLOCK_SKEW"]


def test_clock_state_round_trips() -> None:
    a = Agent()
    for i in range(40):
        a.hear(22.0, T0 + 10 * i - 900 + (i % 3), T0 + 10 * i)
    stored = orjson.loads(orjson.dumps(a.state.to_dict()))
    assert set(stored["clock"]) == {"offset_samples_s", "correction_s", "skew_alarm"}
    back = StationState.from_dict(stored)
    assert back.to_dict() == a.state.to_dict()
    assert back.clock_offset_s() == a.state.clock_offset_s()
    assert back.clock.skew_alert("ST1", T0 + 500, SKEW) is None  # episode kept: no 2nd alert


@settings(max_examples=60, deadline=None)
@given(
    offset=st.one_of(st.floats(-50, 50), st.floats(-50, 200_000)),
    jitter=st.lists(st.floats(0, 2), min_size=20, max_size=40),
    kw=st.floats(0, 350),
)
def test_any_constant_offset_is_measured_and_the_load_counts(offset, jitter, kw) -> None:
    s = StationState(keep_windows=100)
    arrival = T0
    for j in jitter:
        arrival += 10
        assert s.apply(ConnectorReading(1, "CCS", kw, arrival - offset, "s"), arrival + j)
    assert s.load_kw(arrival + 60, 120) == kw
    assert offset - 1e-6 <= s.clock_offset_s() <= offset + 2 + 1e-6
    s.windows.advance(arrival + 10_000)
    inner = s.windows.closed[1:-2]  # windows fully covered by readings
    assert all(w.total_power_kw == pytest.approx(kw, abs=1e-6) for w in inner)
    assert s.late_dropped == 0


@settings(max_examples=100, deadline=None)
@given(good=st.floats(-30, 30), bad=st.lists(st.floats(-1e6, 1e6), max_size=7),
       seed=st.randoms(use_true_random=False))
def test_median_ignores_a_minority_of_wild_stamps(good, bad, seed) -> None:
    samples = [good + k * 0.1 for k in range(StationClock.SAMPLES - len(bad))] + bad
    seed.shuffle(samples)
    clock = StationClock()
    for x in samples:
        clock.add(T0 + x, T0, 60.0)
    # within the good samples (to the float precision of epoch-second arithmetic)
    assert good - 1e-6 <= clock.offset_s <= good + 0.1 * StationClock.SAMPLES + 1e-6


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=1, max_size=80))
def test_skew_alerts_alternate_one_per_episode_edge(offsets) -> None:
    clock = StationClock()
    kinds = []
    for i, off in enumerate(offsets):
        clock.restart()
        for _ in range(StationClock.SAMPLES):  # a station whose clock is `off` behind
            clock.add(T0 + i + off, T0 + i, 60.0)
        alert = clock.skew_alert("ST1", T0 + i, SKEW)
        if alert is not None:
            kinds.append(alert["alert_type"])
    assert kinds == ["CLOCK_SKEW", "CLOCK_SKEW_CLEARED"] * (len(kinds) // 2) + (
        ["CLOCK_SKEW"] if len(kinds) % 2 else [])
    assert (clock.alarm is not None and clock.alarm.active) == (len(kinds) % 2 == 1)
