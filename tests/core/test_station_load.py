"""Station load, windows (time-averaged, bounded), and overload episodes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.overload import HysteresisAlarm, contract_alert
from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading, StationConfig, StationRow
from evgrid.core.zone import ZoneLoad

T0 = 1_800_000_000.0  # a window boundary (divisible by 60)


def reading(cid: int, kw: float, ts: float, ctype: str = "CCS", session: str | None = "s"):
    return ConnectorReading(cid, ctype, kw, ts, session)


def test_constant_50kw_every_10s_for_2_minutes() -> None:
    st_ = StationState()
    for i in range(13):  # t = 0, 10, ..., 120
        assert st_.apply(reading(1, 50.0, T0 + 10 * i))
    assert st_.load_kw(T0 + 120, 120) == 50.0
    st_.windows.watermark = T0 + 10_000  # let every window close
    st_.windows.advance()
    full = [w for w in st_.windows.closed if w.window_end <= T0 + 120]
    assert len(full) == 2
    for w in full:
        assert w.total_power_kw == pytest.approx(50.0)  # the seed's SUM would say 300
        assert w.active_connectors == 1 and w.active_sessions == 1
        assert w.max_connector_power_kw == 50.0


def test_stale_connector_counts_zero() -> None:
    st_ = StationState()
    st_.apply(reading(1, 40.0, T0))
    st_.apply(reading(2, 10.0, T0 + 100))
    assert st_.load_kw(T0 + 110, 120) == 50.0
    assert st_.load_kw(T0 + 130, 120) == 10.0


def test_out_of_order_and_duplicate_readings_change_nothing() -> None:
    st_ = StationState()
    assert st_.apply(reading(1, 40.0, T0 + 10))
    assert not st_.apply(reading(1, 99.0, T0 + 5))
    assert not st_.apply(reading(1, 99.0, T0 + 10))
    assert st_.connectors[1].power_kw == 40.0


def test_two_connectors_summed_in_windows() -> None:
    st_ = StationState()
    for i in range(7):
        st_.apply(reading(1, 30.0, T0 + 10 * i))
        st_.apply(reading(2, 20.0, T0 + 10 * i, session="t"))
    st_.windows.watermark = T0 + 10_000
    w = st_.windows.advance()[0]
    assert w.total_power_kw == pytest.approx(50.0)
    assert w.active_connectors == 2 and w.active_sessions == 2
    assert w.avg_power_per_connector_kw == pytest.approx(25.0)


def test_time_average_of_a_step() -> None:
    st_ = StationState()
    st_.apply(reading(1, 0.0, T0))
    st_.apply(reading(1, 60.0, T0 + 30))  # 0 kW for 30 s, then 60 kW for 30 s
    st_.windows.watermark = T0 + 10_000
    w = st_.windows.advance()[0]
    assert w.total_power_kw == pytest.approx(30.0)


def test_late_reading_within_lateness_updates_its_window_beyond_is_ignored() -> None:
    st_ = StationState(window_s=60, allowed_lateness_s=30)
    st_.apply(reading(1, 10.0, T0 + 5))
    st_.apply(reading(2, 10.0, T0 + 70))  # watermark 70: window [0,60) still open (lateness)
    assert st_.apply(reading(3, 20.0, T0 + 50))  # late but allowed
    st_.apply(reading(2, 10.0, T0 + 95))  # watermark 95 closes [0,60)
    closed = st_.windows.closed
    assert closed and closed[-1].window_start == T0
    assert closed[-1].active_connectors == 2  # connectors 1 and 3
    before = st_.late_dropped
    st_.apply(reading(4, 5.0, T0 + 10))  # its window closed: dropped from the stats
    assert st_.late_dropped == before + 1


def test_window_state_bounded_over_six_hours() -> None:
    st_ = StationState()
    for i in range(6 * 360):  # a reading every 10 s for 6 h, two connectors
        st_.apply(reading(1, 50.0, T0 + 10 * i))
        st_.apply(reading(2, 7.0, T0 + 10 * i, "Type2"))
    assert st_.windows.open_windows() <= 3
    assert len(st_.windows.closed) <= 5
    assert len(orjson.dumps(st_.to_dict())) < 8000


def test_round_trip_through_orjson() -> None:
    st_ = StationState()
    for i in range(20):
        st_.apply(reading(1 + i % 2, 10.0 + i, T0 + 7 * i))
    back = StationState.from_dict(orjson.loads(orjson.dumps(st_.to_dict())))
    assert back.to_dict() == st_.to_dict()
    assert back.windows.snapshot() == st_.windows.snapshot()


@settings(max_examples=50, deadline=None)
@given(p=st.floats(0, 350), k=st.integers(1, 4), step=st.sampled_from([5, 10, 15, 30]))
def test_constant_power_on_k_connectors_gives_k_times_p(p, k, step) -> None:
    st_ = StationState()
    for i in range(0, 181, step):
        for c in range(1, k + 1):
            st_.apply(reading(c, p, T0 + i))
    st_.windows.watermark = T0 + 10_000
    for w in st_.windows.advance():
        if w.window_end <= T0 + 180:
            assert w.total_power_kw == pytest.approx(k * p, abs=1e-6)


def test_contract_oscillation_one_alert_per_episode() -> None:
    alarm = HysteresisAlarm(hysteresis_pct=2.0)
    alerts = []
    for i in range(30):  # 5 minutes, a reading every 10 s, ±1 % around 100 kW
        load = 101.0 if i % 2 == 0 else 99.0
        a = contract_alert("S1", load, 100.0, alarm, T0 + 10 * i)
        if a:
            alerts.append(a["alert_type"])
    assert alerts == ["CONTRACT_OVERLOAD"]
    a = contract_alert("S1", 90.0, 100.0, alarm, T0 + 400)
    assert a is not None and a["alert_type"] == "CONTRACT_OVERLOAD_CLEARED"
    a = contract_alert("S1", 120.0, 100.0, alarm, T0 + 410)
    assert a is not None and a["overload_kw"] == pytest.approx(20.0)


def row(sid: str, zone: str, kw: float, ts: float, max_kw: float = 100.0) -> StationRow:
    return StationRow(StationConfig(sid, zone, max_kw, max_kw), {1: reading(1, kw, ts)})


def test_zone_summary_and_overload() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", "Z1", 60.0, T0))
    z.upsert(row("b", "Z1", 0.0, T0))
    s = z.summary(T0, 120)
    assert s["zone_total_power_kw"] == 60.0 and s["zone_capacity_kw"] == 200.0
    assert s["utilization_pct"] == pytest.approx(30.0) and s["stations_active"] == 1
    assert z.check_overload(T0, 120) is None
    z.upsert(row("b", "Z1", 150.0, T0 + 1))
    alert = z.check_overload(T0 + 1, 120)
    assert alert is not None and alert["alert_type"] == "ZONE_OVERLOAD"
    assert alert["overload_kw"] == pytest.approx(10.0)
    assert z.check_overload(T0 + 2, 120) is None  # still over: no second alert
    assert z.remove("b") and not z.remove("b")
    cleared = z.check_overload(T0 + 3, 120)
    assert cleared is not None and cleared["alert_type"] == "ZONE_OVERLOAD_CLEARED"
