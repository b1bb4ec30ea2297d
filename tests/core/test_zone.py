"""Zone load: summary numbers, capacity, zone overload episodes, storage."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.types import ConnectorReading, StationConfig, StationRow
from evgrid.core.zone import ZoneLoad

T0 = 1_800_000_000.0


def row(sid: str, *kws: float, t: float = 0.0, max_kw: float = 100.0) -> StationRow:
    conns = tuple(ConnectorReading(i + 1, "CCS", kw, T0 + t, "s") for i, kw in enumerate(kws))
    return StationRow(StationConfig(sid, "Z1", max_kw, max_kw), conns)


def test_summary_numbers() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", 40.0, 20.0, max_kw=150.0))
    z.upsert(row("b", 0.0, max_kw=50.0))
    z.upsert(row("c", 30.0, t=-200.0, max_kw=100.0))  # stale: counts 0
    assert z.summary(T0, 120) == {
        "zone_id": "Z1",
        "zone_total_power_kw": 60.0,
        "zone_capacity_kw": 300.0,
        "utilization_pct": 20.0,
        "stations_active": 1,
        "stations": 3,
        "stations_reporting": 2,  # b reports 0 kW; c is stale
    }
    assert z.capacity_kw() == 300.0
    assert z.total_kw(T0, 120) == pytest.approx(60.0)


def test_empty_zone_has_zero_utilization() -> None:
    s = ZoneLoad("Z0").summary(T0, 120)
    assert s["zone_capacity_kw"] == 0 and s["utilization_pct"] == 0.0 and s["stations"] == 0


def test_upsert_replaces_and_remove_drops() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", 10.0), T0, 120)
    z.upsert(row("a", 70.0, max_kw=80.0), T0, 120)
    assert z.capacity_kw() == 80.0 and z.running_total_kw() == pytest.approx(70.0)
    assert z.remove("a") and not z.remove("a")
    assert z.capacity_kw() == 0.0 and z.running_total_kw() == 0.0


def test_zone_overload_one_alert_per_episode() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", 60.0))
    z.upsert(row("b", 0.0))
    assert z.check_overload(T0, 120) is None
    z.upsert(row("b", 150.0, t=1))
    alert = z.check_overload(T0 + 1, 120)
    assert alert == {
        "alert_type": "ZONE_OVERLOAD",
        "zone_id": "Z1",
        "total_power_kw": 210.0,
        "capacity_kw": 200.0,
        "overload_kw": 10.0,
        "detected_at": T0 + 1,
    }
    for i in range(2, 30):  # stays over, wobbling within the band: no more alerts
        z.upsert(row("b", 139.0 + i % 3, t=i))
        assert z.check_overload(T0 + i, 120) is None
    z.upsert(row("b", 100.0, t=30))
    cleared = z.check_overload(T0 + 30, 120)
    assert cleared is not None and cleared["alert_type"] == "ZONE_OVERLOAD_CLEARED"
    assert cleared["overload_kw"] == 0.0


def test_staleness_alone_can_clear_a_zone_overload() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", 150.0))
    assert z.check_overload(T0, 120)["alert_type"] == "ZONE_OVERLOAD"
    assert z.check_overload(T0 + 121, 120)["alert_type"] == "ZONE_OVERLOAD_CLEARED"


def test_zone_overload_clears_when_its_last_station_leaves() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", 150.0))
    assert z.check_overload(T0, 120) is not None
    z.remove("a")
    cleared = z.check_overload(T0 + 1, 120)
    assert cleared is not None and cleared["alert_type"] == "ZONE_OVERLOAD_CLEARED"
    assert z.check_overload(T0 + 2, 120) is None


def test_running_total_used_per_row() -> None:
    z = ZoneLoad("Z1")
    z.upsert(row("a", 90.0), T0, 120)
    z.upsert(row("b", 120.0), T0, 120)
    alert = z.check_overload(T0, 120, exact=False)
    assert alert is not None and alert["total_power_kw"] == 210.0


def test_round_trip_through_orjson() -> None:
    z = ZoneLoad("Z1", hysteresis_pct=3.0)
    z.upsert(row("a", 150.0, 10.0))
    z.upsert(row("b", 20.0, max_kw=40.0))
    z.check_overload(T0, 120)
    back = ZoneLoad.from_dict(orjson.loads(orjson.dumps(z.to_dict())), T0, 120)
    assert back.to_dict() == z.to_dict()
    assert back.summary(T0, 120) == z.summary(T0, 120)
    assert back.alarm == z.alarm and back.alarm.active
    assert back.check_overload(T0 + 1, 120) is None  # no second alert after a restart


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0, 300), st.booleans()), max_size=50))
def test_running_figures_match_exact_ones(ops) -> None:
    z, model = ZoneLoad("Z1"), {}
    for sid, kw, remove in ops:
        if remove:
            assert z.remove(sid) == (model.pop(sid, None) is not None)
        else:
            z.upsert(row(sid, kw, max_kw=kw + 1.0), T0, 120)
            model[sid] = kw
    assert z.running_total_kw() == pytest.approx(sum(model.values()), abs=1e-6)
    assert z.capacity_kw() == pytest.approx(sum(model.values()) + len(model), abs=1e-6)
    summary = z.summary(T0, 120)
    assert summary["stations"] == len(model)
    assert summary["stations_active"] == sum(1 for kw in model.values() if kw > 0)
    assert z.total_kw(T0, 120) == pytest.approx(sum(model.values()), abs=1e-6)


def test_configs_share_their_zone_id_and_equal_connector_limits() -> None:
    """Every station has a config on both sides; what is alike across a fleet is held once."""
    zone = "".join(["Z-", "shared"])  # built at run time: not a constant the compiler shares
    a = StationConfig("S1", zone, 300.0, 250.0, {"CCS": 150.0, "Type2": 22.0})
    b = StationConfig("S2", "".join(["Z-", "shared"]), 300.0, 250.0,
                      {"Type2": 22.0, "CCS": 150.0})
    c = StationConfig("S3", zone, 300.0, 250.0, {"CCS": 50.0})
    assert a.zone_id is b.zone_id
    assert a.connector_max_kw is b.connector_max_kw
    assert a.connector_max_kw == {"CCS": 150.0, "Type2": 22.0}
    assert c.connector_max_kw == {"CCS": 50.0} and c.connector_max_kw is not a.connector_max_kw
    assert StationConfig("S4", zone, 1.0, 1.0).connector_max_kw is None
