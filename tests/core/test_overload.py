"""Overload hysteresis: one alert when an episode starts, one when it ends."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evgrid.core.overload import CLEARED, RAISED, HysteresisAlarm, contract_alert, zone_alert
from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading

T0 = 1_800_000_000.0


def test_station_oscillating_around_its_contract_gives_one_alert_per_episode() -> None:
    """A reading every 10 s for 5 minutes at the contract ±1 %, through the real station load."""
    station, alarm, alerts = StationState(), HysteresisAlarm(hysteresis_pct=2.0), []
    contract = 100.0

    def reading(i: int, kw: float) -> None:
        now = T0 + 10 * i
        station.apply(ConnectorReading(1, "CCS", kw, now, "s"))
        a = contract_alert("S1", station.load_kw(now, 120), contract, alarm, now)
        if a is not None:
            alerts.append(a)

    for i in range(30):
        reading(i, 101.0 if i % 2 == 0 else 99.0)
    assert [a["alert_type"] for a in alerts] == ["CONTRACT_OVERLOAD"]
    assert alerts[0]["overload_kw"] == pytest.approx(1.0) and alerts[0]["detected_at"] == T0
    assert alarm.active and alarm.since == T0 and alarm.peak == 101.0
    reading(30, 98.5)  # inside the band (> 98): still the same episode
    assert len(alerts) == 1
    reading(31, 90.0)
    assert [a["alert_type"] for a in alerts] == ["CONTRACT_OVERLOAD", "CONTRACT_OVERLOAD_CLEARED"]
    assert alerts[1]["overload_kw"] == 0.0 and alerts[1]["total_power_kw"] == 90.0
    for i in range(32, 62):  # second episode, same oscillation: again exactly one alert
        reading(i, 101.0 if i % 2 == 0 else 99.0)
    assert [a["alert_type"] for a in alerts[2:]] == ["CONTRACT_OVERLOAD"]


def test_contract_alert_fields() -> None:
    alarm = HysteresisAlarm()
    a = contract_alert("S9", 120.04, 100.0, alarm, T0 + 5)
    assert a == {
        "alert_type": "CONTRACT_OVERLOAD",
        "station_id": "S9",
        "total_power_kw": 120.04,
        "contract_max_kw": 100.0,
        "overload_kw": 20.04,
        "detected_at": T0 + 5,
    }
    assert contract_alert("S9", 130.0, 100.0, alarm, T0 + 6) is None
    assert alarm.peak == 130.0


def test_zone_alert_fields() -> None:
    alarm = HysteresisAlarm()
    a = zone_alert("Z1", 510.0, 500.0, alarm, T0)
    assert a is not None and a["alert_type"] == "ZONE_OVERLOAD" and a["zone_id"] == "Z1"
    assert a["capacity_kw"] == 500.0 and a["overload_kw"] == pytest.approx(10.0)
    c = zone_alert("Z1", 400.0, 500.0, alarm, T0 + 1)
    assert c is not None and c["alert_type"] == "ZONE_OVERLOAD_CLEARED"


def test_edges_are_strict() -> None:
    alarm = HysteresisAlarm(hysteresis_pct=2.0)
    assert alarm.update(100.0, 100.0, T0) is None  # at the limit is not over it
    assert alarm.update(100.1, 100.0, T0) == RAISED
    assert alarm.update(98.0, 100.0, T0) is None  # at the band edge is not under it
    assert alarm.update(97.99, 100.0, T0) == CLEARED
    assert not alarm.active and alarm.since is None


def test_zero_hysteresis_clears_just_under_the_limit() -> None:
    alarm = HysteresisAlarm(hysteresis_pct=0.0)
    assert alarm.update(101.0, 100.0, T0) == RAISED
    assert alarm.update(100.0, 100.0, T0) is None
    assert alarm.update(99.9, 100.0, T0) == CLEARED


def test_zero_load_clears_even_a_zero_limit() -> None:
    alarm = HysteresisAlarm()
    assert alarm.update(5.0, 0.0, T0) == RAISED
    assert alarm.update(0.0, 0.0, T0 + 1) == CLEARED


def test_round_trip_mid_episode() -> None:
    alarm = HysteresisAlarm(hysteresis_pct=3.0)
    alarm.update(120.0, 100.0, T0)
    alarm.update(125.0, 100.0, T0 + 1)
    back = HysteresisAlarm.from_dict(orjson.loads(orjson.dumps(alarm.to_dict())))
    assert back == alarm
    assert back.update(110.0, 100.0, T0 + 2) is None  # no second RAISED after a restart
    assert back.update(96.0, 100.0, T0 + 3) == CLEARED


@given(
    st.lists(st.floats(0, 200), max_size=200),
    st.floats(0, 20),
)
def test_alerts_alternate_and_match_the_state(values, hysteresis) -> None:
    alarm = HysteresisAlarm(hysteresis_pct=hysteresis)
    edges = [e for v in values if (e := alarm.update(v, 100.0, T0)) is not None]
    assert edges == [RAISED, CLEARED] * (len(edges) // 2) + [RAISED] * (len(edges) % 2)
    assert alarm.active == (len(edges) % 2 == 1)
    if alarm.active:
        assert alarm.peak > 100.0


@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=200))
def test_noise_inside_the_band_never_alerts_twice(noise) -> None:
    alarm = HysteresisAlarm(hysteresis_pct=2.0)
    edges = [alarm.update(100.0 + n, 100.0, T0) for n in noise]
    assert edges.count(RAISED) <= 1 and edges.count(CLEARED) == 0
