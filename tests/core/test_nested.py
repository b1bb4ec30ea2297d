"""The nested allocator: zone cap ⊇ site limits ⊇ station ceilings ⊇ connector minimums."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evgrid.core.allocator import ConnectorDemand, StationDemand, ac_floor_kw, allocate
from evgrid.core.nested import allocate_nested

AC_MIN = ac_floor_kw()  # 4.14 kW: 6 A on 3 x 230 V
DC_MIN = 5.0
EPS = 1e-6


def ac_station(station_id: str, kw: float, floor: bool = True, ceiling: float = 22.0
               ) -> StationDemand:
    conn = ConnectorDemand(1, "Type2", kw, AC_MIN if floor else 0.0, ceiling)
    return StationDemand(station_id, kw, conn.floor_kw, ceiling, (conn,))


def test_site_only_equal_shares_under_its_threshold() -> None:
    stations = [ac_station(f"s{i}", 11.0) for i in range(6)]
    site_of = {s.station_id: "depot" for s in stations}
    out = allocate_nested(None, stations, {"depot": 36.0}, site_of)
    assert out.site_kw["depot"] == pytest.approx(36.0)
    assert list(out.allocation.targets.values()) == pytest.approx([6.0] * 6)
    assert out.site_shortfall_kw == {"depot": 0.0}


def test_without_sites_or_cap_everyone_gets_their_demand() -> None:
    stations = [ac_station("a", 11.0), ac_station("b", 7.0)]
    out = allocate_nested(None, stations, {}, {})
    assert out.allocation.targets == {"a": 11.0, "b": 7.0}


def test_what_a_full_site_cannot_take_goes_to_the_others() -> None:
    # Zone cap 40 over a site limited to 12 (three stations) and two stations outside it.
    inside = [ac_station(f"in{i}", 10.0) for i in range(3)]
    outside = [ac_station(f"out{i}", 20.0) for i in range(2)]
    site_of = {s.station_id: "S" for s in inside}
    out = allocate_nested(40.0, inside + outside, {"S": 12.0}, site_of)
    t = out.allocation.targets
    assert sum(t[s.station_id] for s in inside) == pytest.approx(12.0)
    assert t["out0"] == t["out1"] == pytest.approx(14.0)  # 40 − 12 split over the two
    assert sum(t.values()) == pytest.approx(40.0)


def test_zone_cap_below_the_site_limit_binds_everyone_proportionally() -> None:
    stations = [ac_station(f"s{i}", 10.0) for i in range(4)]
    site_of = {"s0": "S", "s1": "S"}
    out = allocate_nested(20.0, stations, {"S": 30.0}, site_of)
    assert list(out.allocation.targets.values()) == pytest.approx([5.0] * 4)


def test_a_site_limit_is_the_same_as_allocate_over_its_stations() -> None:
    stations = [ac_station("a", 11.0), ac_station("b", 6.0), ac_station("c", 9.0)]
    site_of = {s.station_id: "S" for s in stations}
    nested = allocate_nested(None, stations, {"S": 15.0}, site_of)
    flat = allocate(15.0, stations)
    assert nested.allocation.targets == pytest.approx(flat.targets)


def test_site_under_its_floors_suspends_even_connectors_with_a_floor() -> None:
    # Four AC cars whose minimums (4 x 4.14) exceed a 10 kW fuse: two are paused (0 A),
    # the two left share the 10 kW; none is given a limit under 6 A.
    stations = [ac_station(f"s{i}", 11.0) for i in range(4)]
    site_of = {s.station_id: "S" for s in stations}
    out = allocate_nested(None, stations, {"S": 10.0}, site_of)
    a = out.allocation
    assert len(a.suspended) == 2
    assert out.site_shortfall_kw["S"] == 0.0
    assert sum(a.targets.values()) <= 10.0 + EPS
    for limits in a.connectors.values():
        for c in limits:
            assert c.limit_kw == 0.0 or c.limit_a >= 6.0


def test_rotation_moves_who_is_suspended_in_a_site() -> None:
    stations = [ac_station(f"s{i}", 11.0) for i in range(4)]
    site_of = {s.station_id: "S" for s in stations}
    first = allocate_nested(None, stations, {"S": 10.0}, site_of, rotation=0)
    second = allocate_nested(None, stations, {"S": 10.0}, site_of, rotation=1)
    assert first.allocation.suspended != second.allocation.suspended
    assert len(second.allocation.suspended) == 2


def test_zone_cap_under_floors_without_suspension_reports_the_shortfall() -> None:
    stations = [ac_station(f"s{i}", 11.0) for i in range(3)]
    out = allocate_nested(6.0, stations, {}, {})
    assert out.allocation.shortfall_kw == pytest.approx(3 * AC_MIN - 6.0)
    assert not out.allocation.suspended


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        allocate_nested(None, [ac_station("a", 1.0)], {"S": -1.0}, {"a": "S"})
    with pytest.raises(ValueError):
        allocate_nested(math.nan, [ac_station("a", 1.0)], {}, {})


# -- properties ----------------------------------------------------------------------------

@st.composite
def trees(draw: st.DrawFn) -> tuple:
    """A zone of sites of stations of connectors, with floors, ceilings and limits."""
    n_sites = draw(st.integers(0, 4))
    site_ids = [f"site{k}" for k in range(n_sites)]
    limits = {s: draw(st.floats(0.0, 150.0)) for s in site_ids}
    stations, site_of = [], {}
    for i in range(draw(st.integers(1, 10))):
        station_id = f"st{i:02d}"
        conns = []
        for j in range(draw(st.integers(1, 3))):
            ac = draw(st.booleans())
            kw = draw(st.sampled_from([0.0, 1.0, 3.7, 7.4, 11.0, 22.0]) if ac
                      else st.sampled_from([0.0, 4.0, 25.0, 50.0, 150.0]))
            floor = 0.0 if kw == 0.0 or draw(st.booleans()) else (AC_MIN if ac else DC_MIN)
            ceiling = draw(st.sampled_from([11.0, 22.0, 50.0, 150.0, math.inf]))
            conns.append(ConnectorDemand(j + 1, "Type2" if ac else "CCS", kw, floor, ceiling))
        demand = sum(c.demand_kw for c in conns)
        ceiling = draw(st.sampled_from([22.0, 50.0, 100.0, 400.0]))
        stations.append(StationDemand(station_id, demand, sum(c.floor_kw for c in conns),
                                      ceiling, tuple(conns)))
        if site_ids and draw(st.booleans()):
            site_of[station_id] = draw(st.sampled_from(site_ids))
    cap = draw(st.none() | st.floats(0.0, 600.0))
    return cap, stations, limits, site_of, draw(st.integers(0, 20))


def _min_level(c: ConnectorDemand) -> float:
    return max(AC_MIN if c.connector_type == "Type2" else DC_MIN, c.floor_kw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_every_constraint_holds_or_its_shortfall_is_reported(tree: tuple) -> None:
    cap, stations, limits, site_of, rotation = tree
    out = allocate_nested(cap, stations, limits, site_of, rotation=rotation)
    a = out.allocation
    t = a.targets
    # the zone cap
    if cap is not None:
        assert sum(t.values()) <= cap + EPS or a.shortfall_kw > 0.0
    # every site's limit
    for site_id, limit in limits.items():
        members = [s for s in stations if site_of.get(s.station_id) == site_id]
        total = sum(t[s.station_id] for s in members)
        assert total == pytest.approx(out.site_kw.get(site_id, 0.0), abs=EPS)
        assert total <= limit + EPS or out.site_shortfall_kw[site_id] > 0.0
    for s in stations:
        limits_of = {c.connector_id: c for c in a.connectors[s.station_id]}
        kept_min = kept_levels = 0.0
        for c in s.connectors:
            lim = limits_of[c.connector_id]
            suspended = (s.station_id, c.connector_id) in a.suspended
            # never between 0 and the connector's minimum level (6 A for AC)
            assert lim.limit_kw == 0.0 or lim.limit_kw >= _min_level(c) - EPS
            if min(c.demand_kw, c.ceiling_kw) > 0.0 and not suspended:
                kept_levels += _min_level(c)  # a car drawing under its minimum keeps it
            if c.connector_type == "Type2":
                assert lim.limit_a == 0.0 or lim.limit_a >= 6.0
            # a connector with a floor and something to draw is only ever at 0 if suspended
            if c.floor_kw > 0.0 and min(c.demand_kw, c.ceiling_kw) > 0.0 and not suspended:
                assert lim.limit_kw >= _min_level(c) - EPS
                kept_min += _min_level(c)
        # no station below its (kept connectors') floor
        assert t[s.station_id] >= kept_min - EPS
        # no station above its demand, its ceiling or what its minimum levels force
        assert t[s.station_id] <= max(min(s.demand_kw, s.ceiling_kw), kept_levels) + EPS


@settings(max_examples=300, deadline=None)
@given(trees(), st.integers(2, 5))
def test_equal_demands_get_equal_shares(tree: tuple, copies: int) -> None:
    """Copies of one station in one site (or all outside sites) get one target each."""
    cap, stations, limits, site_of, _rotation = tree
    template = stations[0]
    clones = [StationDemand(f"clone{k}", template.demand_kw, template.floor_kw,
                            template.ceiling_kw, template.connectors) for k in range(copies)]
    site = site_of.get(template.station_id)
    site_of = dict(site_of)
    for c in clones:
        if site is not None:
            site_of[c.station_id] = site
    out = allocate_nested(cap, stations[1:] + clones, limits, site_of)
    if out.allocation.suspended:
        return  # pausing is by rotation, one car at a time: shares of who runs are equal
    shares = {round(out.allocation.targets[c.station_id], 6) for c in clones}
    assert len(shares) == 1
