"""The allocator: worked examples and hypothesis properties."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.allocator import (
    ConnectorDemand,
    StationDemand,
    ac_floor_kw,
    allocate,
    rotation_index,
    split_station,
    water_fill,
)

EPS = 1e-6


def station(sid: str, d: float, m: float = 0.0, ceiling: float = math.inf) -> StationDemand:
    return StationDemand(sid, d, m, ceiling)


def test_no_curtailment_needed_everyone_keeps_their_demand() -> None:
    alloc = allocate(1000, [station("a", 100), station("b", 50)])
    assert alloc.targets == {"a": 100, "b": 50}
    assert alloc.shortfall_kw == 0


def test_proportional_cut() -> None:
    alloc = allocate(70, [station(s, d) for s, d in zip("abcd", [10, 20, 30, 40], strict=True)])
    assert alloc.targets == pytest.approx({"a": 7, "b": 14, "c": 21, "d": 28})


def test_station_pinned_at_floor_the_rest_taken_proportionally() -> None:
    alloc = allocate(70, [station("a", 10, 9), station("b", 20), station("c", 30),
                          station("d", 40)])
    assert alloc.targets["a"] == pytest.approx(9)
    rest = [alloc.targets[s] / d for s, d in (("b", 20), ("c", 30), ("d", 40))]
    assert max(rest) - min(rest) < EPS
    assert sum(alloc.targets.values()) == pytest.approx(70)


def test_floors_exceed_cap_everyone_at_floor_and_shortfall() -> None:
    alloc = allocate(10, [station("a", 50, 8), station("b", 50, 8)])
    assert alloc.targets == {"a": 8, "b": 8}
    assert alloc.shortfall_kw == pytest.approx(6)


def test_zero_cap_zero_floors_all_zero() -> None:
    alloc = allocate(0, [station("a", 50), station("b", 20)])
    assert alloc.targets == {"a": 0, "b": 0}
    assert alloc.shortfall_kw == 0


def test_ceiling_limits_a_station() -> None:
    alloc = allocate(100, [station("a", 100, ceiling=20), station("b", 100)])
    assert alloc.targets["a"] == pytest.approx(20)
    assert alloc.targets["b"] == pytest.approx(80)


def test_floor_above_demand_never_raises_the_target() -> None:
    alloc = allocate(1, [station("a", 3, m=5), station("b", 100)])
    assert alloc.targets["a"] <= 3


def test_connector_split_and_ac_amps() -> None:
    conns = (
        ConnectorDemand(1, "CCS", 100, 5, 150),
        ConnectorDemand(2, "Type2", 22, ac_floor_kw(), 22),
    )
    limits = split_station(61, conns)
    assert sum(c.limit_kw for c in limits) == pytest.approx(61, abs=1e-3)
    ac = limits[1]
    assert ac.limit_a is not None
    assert ac.limit_a == math.floor(ac.limit_kw * 1000 / (3 * 230) * 10) / 10
    assert limits[0].limit_a is None


def test_ac_floor_is_six_amps_per_phase() -> None:
    assert ac_floor_kw(3) == pytest.approx(4.14)
    assert ac_floor_kw(1) == pytest.approx(1.38)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        water_fill(-1, [1], [0], [1])
    with pytest.raises(ValueError):
        water_fill(10, [math.nan], [0], [1])


stations_strategy = st.lists(
    st.tuples(
        st.floats(0, 400),  # demand
        st.floats(0, 20),  # floor
        st.floats(1, 500),  # ceiling
    ),
    min_size=1,
    max_size=40,
)


def build(rows: list[tuple[float, float, float]]) -> list[StationDemand]:
    return [station(f"s{i:03d}", d, m, c) for i, (d, m, c) in enumerate(rows)]


@settings(max_examples=300, deadline=None)
@given(rows=stations_strategy, cap=st.floats(0, 5000))
def test_properties_bounds_and_sum(rows, cap) -> None:
    stations = build(rows)
    alloc = allocate(cap, stations)
    uppers = {s.station_id: min(s.demand_kw, s.ceiling_kw) for s in stations}
    lows = {sid: min(s.floor_kw, uppers[sid]) for sid, s in zip(uppers, stations, strict=True)}
    total = sum(alloc.targets.values())
    for sid, t in alloc.targets.items():
        assert lows[sid] - EPS <= t <= uppers[sid] + EPS
    if sum(lows.values()) <= cap:
        assert total <= cap + 1e-6 * max(1.0, cap)
        assert total == pytest.approx(min(cap, sum(uppers.values())), rel=1e-9, abs=1e-6)
        assert alloc.shortfall_kw == 0
    else:
        assert alloc.shortfall_kw == pytest.approx(sum(lows.values()) - cap)


@settings(max_examples=300, deadline=None)
@given(rows=stations_strategy, cap=st.floats(0, 5000))
def test_property_unbounded_stations_keep_equal_ratios(rows, cap) -> None:
    stations = build(rows)
    alloc = allocate(cap, stations)
    ratios = []
    for s in stations:
        t = alloc.targets[s.station_id]
        upper = min(s.demand_kw, s.ceiling_kw)
        low = min(s.floor_kw, upper)
        if s.demand_kw > 1e-3 and low + 1e-6 < t < upper - 1e-6:
            ratios.append(t / s.demand_kw)
    if ratios:
        assert max(ratios) - min(ratios) < 1e-6


@settings(max_examples=200, deadline=None)
@given(rows=stations_strategy, cap=st.floats(0, 5000), extra=st.floats(0, 1000))
def test_property_larger_cap_never_lowers_a_target(rows, cap, extra) -> None:
    stations = build(rows)
    small = allocate(cap, stations).targets
    large = allocate(cap + extra, stations).targets
    for sid in small:
        assert large[sid] >= small[sid] - 1e-6


@settings(max_examples=100, deadline=None)
@given(rows=stations_strategy, cap=st.floats(0, 5000), seed=st.integers(0, 2**16))
def test_property_same_input_any_order_same_output(rows, cap, seed) -> None:
    stations = build(rows)
    shuffled = list(stations)
    random.Random(seed).shuffle(shuffled)
    assert allocate(cap, stations) == allocate(cap, shuffled)


@settings(max_examples=200, deadline=None)
@given(
    target=st.floats(0, 400),
    conns=st.lists(
        st.tuples(st.sampled_from(["CCS", "CHAdeMO", "Type2"]), st.floats(0, 150),
                  st.floats(1, 350)),
        min_size=1, max_size=4,
    ),
)
def test_property_connector_limits_sum_to_station_target(target, conns) -> None:
    """Connectors without a minimum level (min_kw=0) split the target exactly."""
    demands = tuple(
        ConnectorDemand(i + 1, kind, d, 0.0, ceiling, min_kw=0.0)
        for i, (kind, d, ceiling) in enumerate(conns)
    )
    limits = split_station(target, demands)
    reachable = sum(min(c.demand_kw, c.ceiling_kw) for c in demands)
    if reachable <= 0:
        reachable = sum(min(c.ceiling_kw, target) for c in demands)
    assert sum(c.limit_kw for c in limits) == pytest.approx(min(target, reachable), abs=5e-3)
    for c, lim in zip(demands, limits, strict=True):
        assert lim.limit_kw <= c.ceiling_kw + 1e-3


# -- minimum levels: no limit between 0 and 6 A (AC) or the DC minimum ------------------------

AC_MIN = ac_floor_kw(3)  # 4.14 kW: 6 A on three phases at 230 V
DC_MIN = 5.0


def ac(cid: int, kw: float, floor: float = 0.0, phases: int = 3) -> ConnectorDemand:
    return ConnectorDemand(cid, "Type2", kw, floor, 22.0, phases=phases)


def level(c: ConnectorDemand) -> float:
    return ac_floor_kw(c.phases) if c.connector_type == "Type2" else DC_MIN


def assert_signalable(alloc, stations) -> None:
    """Every limit is 0 or at least the connector's minimum level, in kW and in amperes, and
    never above what it draws (or its minimum, for a car drawing less; a station where nothing
    draws offers its target up to the connectors' type limits)."""
    by_id = {s.station_id: {c.connector_id: c for c in s.connectors} for s in stations}
    for sid, limits in alloc.connectors.items():
        idle = all(min(c.demand_kw, c.ceiling_kw) <= 0 for c in by_id[sid].values())
        for lim in limits:
            c = by_id[sid][lim.connector_id]
            if lim.limit_kw == 0.0:
                assert lim.limit_a in (None, 0.0)
                continue
            assert lim.limit_kw >= level(c) - 1e-9, (sid, lim)
            upper = c.ceiling_kw if idle else min(c.demand_kw, c.ceiling_kw)
            assert lim.limit_kw <= max(upper, level(c)) + 1e-3
            if c.connector_type == "Type2":
                assert lim.limit_a is not None and lim.limit_a >= 6.0, (sid, lim)
            else:
                assert lim.limit_a is None


def test_emergency_four_ac_stations_at_16a_to_30_percent() -> None:
    """Priority 1, floors 0, cap 30 % of the load: one suspended and three at 6.4 A, not
    four at 4.8 A (3.31 kW), which chargers would clamp up to 6 A."""
    kw16 = 3 * 230 * 16 / 1000  # 11.04 kW
    stations = [StationDemand(f"AC{i}", kw16, 0.0, 22.0, (ac(1, kw16),)) for i in range(4)]
    cap = 0.3 * 4 * kw16
    alloc = allocate(cap, stations)
    assert_signalable(alloc, stations)
    limits = [lim for sid in sorted(alloc.connectors) for lim in alloc.connectors[sid]]
    assert [lim.limit_kw for lim in limits].count(0.0) == 1  # the fewest suspended
    assert sum(lim.limit_kw for lim in limits) <= cap + 1e-9
    assert sum(alloc.targets.values()) == pytest.approx(cap)  # the zone meets its cap
    kept = [lim for lim in limits if lim.limit_kw > 0]
    assert all(lim.limit_a == 6.4 for lim in kept)  # 13.248 / 3 = 4.416 kW
    assert alloc.shortfall_kw == 0.0
    assert alloc.suspended == {("AC0", 1)}
    assert allocate(cap, stations, rotation=1).suspended == {("AC1", 1)}


def test_under_every_minimum_everyone_is_suspended_without_shortfall() -> None:
    stations = [StationDemand(f"S{i}", 11.0, 0.0, 22.0, (ac(1, 11.0),)) for i in range(3)]
    alloc = allocate(3.0, stations)
    assert all(lim.limit_kw == 0.0 for lims in alloc.connectors.values() for lim in lims)
    assert alloc.targets == {"S0": 0.0, "S1": 0.0, "S2": 0.0}
    assert alloc.shortfall_kw == 0.0 and len(alloc.suspended) == 3


def test_committed_floors_are_never_suspended() -> None:
    """Economic curtailment (floors kept): over the cap, everyone at the minimum + shortfall."""
    stations = [StationDemand(f"S{i}", 11.0, AC_MIN, 22.0, (ac(1, 11.0, AC_MIN),))
                for i in range(3)]
    alloc = allocate(6.0, stations)
    assert all(lim.limit_kw == pytest.approx(AC_MIN) for lims in alloc.connectors.values()
               for lim in lims)
    assert alloc.shortfall_kw == pytest.approx(3 * AC_MIN - 6.0)
    assert alloc.suspended == frozenset()


def test_low_share_lifted_to_the_minimum_rather_than_suspended() -> None:
    """Two stations, cap fits both minimums: the small one is held at 6 A, not at 4 A."""
    stations = [StationDemand("big", 22.0, 0.0, 22.0, (ac(1, 22.0),)),
                StationDemand("small", 5.0, 0.0, 22.0, (ac(1, 5.0),))]
    alloc = allocate(10.0, stations)
    assert alloc.targets["small"] == pytest.approx(AC_MIN)
    assert alloc.targets["big"] == pytest.approx(10.0 - AC_MIN)
    assert alloc.suspended == frozenset()


def test_split_station_suspends_within_the_station() -> None:
    conns = (ac(1, 11.0), ac(2, 11.0), ConnectorDemand(3, "CCS", 50.0, 0.0, 150.0))
    # 7 kW fits one connector's minimum: the walk from connector 1 pauses 1 and 2
    assert [lim.limit_kw for lim in split_station(7.0, conns)] == [0.0, 0.0, 7.0]
    # the next rotations start the walk at connectors 2 and 3
    assert [lim.limit_kw for lim in split_station(7.0, conns, rotation=1)] == [7.0, 0.0, 0.0]
    assert [lim.limit_kw for lim in split_station(7.0, conns, rotation=2)] == [0.0, 7.0, 0.0]


def test_idle_station_offers_its_target_in_signalable_levels() -> None:
    conns = (ac(1, 0.0), ac(2, 0.0))
    limits = split_station(6.0, conns)  # not enough for two at 6 A: one gets it all
    assert sorted(lim.limit_kw for lim in limits) == [0.0, pytest.approx(6.0)]
    assert all(lim.limit_kw == 0.0 for lim in split_station(3.0, conns))


def test_rotation_index_steps_once_per_period() -> None:
    assert [rotation_index(t, 100.0, 300.0) for t in (0.0, 100.0, 399.9, 400.0, 1000.0)] == [
        0, 0, 0, 1, 3]
    assert rotation_index(500.0, 100.0, 0.0) == 0


connector_rows = st.lists(
    st.tuples(
        st.sampled_from(["Type2-3", "Type2-1", "CCS", "CHAdeMO"]),
        st.floats(0, 150),  # demand
        st.booleans(),  # committed floor (economic) or suspendable (SHED / priority 1)
    ),
    min_size=1, max_size=4,
)


def build_zone(
    rows: list[list[tuple[str, float, bool]]], ceilings: list[float] | None = None
) -> list[StationDemand]:
    stations = []
    for i, conns in enumerate(rows):
        built = []
        for j, (kind, d, committed) in enumerate(conns):
            if kind.startswith("Type2"):
                c = ConnectorDemand(j + 1, "Type2", min(d, 22.0), 0.0, 22.0,
                                    phases=int(kind[-1]))
            else:
                c = ConnectorDemand(j + 1, kind, d, 0.0, 150.0)
            floor = level(c) if committed and c.demand_kw > 0 else 0.0
            built.append(ConnectorDemand(c.connector_id, c.connector_type, c.demand_kw, floor,
                                         c.ceiling_kw, c.phases))
        demand = sum(c.demand_kw for c in built)
        ceiling = ceilings[i % len(ceilings)] if ceilings else math.inf
        stations.append(StationDemand(f"s{i:02d}", demand, sum(c.floor_kw for c in built),
                                      ceiling, tuple(built)))
    return stations


def committed_kw(stations: list[StationDemand]) -> float:
    return sum(max(c.floor_kw, level(c)) for s in stations for c in s.connectors
               if c.floor_kw > 0)


def suspendable(stations: list[StationDemand]) -> list[tuple[str, int]]:
    return [(s.station_id, c.connector_id) for s in stations for c in s.connectors
            if c.floor_kw == 0 and min(c.demand_kw, c.ceiling_kw) > 0]


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(connector_rows, min_size=1, max_size=8), frac=st.floats(0, 1.2),
       rotation=st.integers(0, 50),
       ceilings=st.one_of(st.none(), st.lists(st.floats(1, 300), min_size=1, max_size=8)))
def test_property_limits_signalable_and_cap_met(rows, frac, rotation, ceilings) -> None:
    stations = build_zone(rows, ceilings)
    cap = frac * sum(s.demand_kw for s in stations)
    alloc = allocate(cap, stations, rotation=rotation)
    assert_signalable(alloc, stations)
    total = sum(alloc.targets.values())
    limits_total = sum(lim.limit_kw for lims in alloc.connectors.values() for lim in lims)
    kept_levels = {}
    for s in stations:
        kept = [c for c, lim in zip(s.connectors, alloc.connectors[s.station_id], strict=True)
                if lim.limit_kw > 0]
        kept_levels[s.station_id] = kept
        # a station's target is its kept connectors' limits, never above what they may take
        assert alloc.targets[s.station_id] == pytest.approx(
            sum(lim.limit_kw for lim in alloc.connectors[s.station_id]), abs=2e-3)
        if all(min(c.demand_kw, c.ceiling_kw) >= level(c) for c in kept):
            assert alloc.targets[s.station_id] <= s.demand_kw + 1e-6  # target ≤ demand
        if committed_kw([s]) <= s.ceiling_kw:  # only committed minimums may exceed it
            assert alloc.targets[s.station_id] <= s.ceiling_kw + 1e-6  # target ≤ ceiling
    if committed_kw(stations) <= cap + 1e-9:  # feasible: the cap holds
        assert alloc.shortfall_kw == 0.0
        assert total <= cap + 1e-6
        # limits carry 3 decimals: each may round up by half a watt
        n_connectors = sum(len(s.connectors) for s in stations)
        assert limits_total <= cap + 5e-4 * n_connectors + 1e-9
        # water filling: the cap is used up unless every kept station is at its upper
        at_upper = all(
            alloc.targets[s.station_id] >= min(s.demand_kw, s.ceiling_kw, sum(
                max(min(c.demand_kw, c.ceiling_kw), level(c)) for c in kept_levels[s.station_id]
            )) - 1e-6
            for s in stations
        )
        assert total == pytest.approx(cap, abs=1e-6) or at_upper
    else:
        assert alloc.shortfall_kw == pytest.approx(committed_kw(stations) - cap)
        assert not any(key not in alloc.suspended for key in suspendable(stations))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(connector_rows, min_size=1, max_size=8),
       frac=st.one_of(st.floats(0, 0.3), st.floats(0, 1)))
def test_property_suspended_set_rotates_fairly(rows, frac) -> None:
    """Over one cycle of rotations every suspendable connector is paused at least once (when
    any must be), and kept at least once when it fits the cap beside the committed ones."""
    stations = build_zone(rows)
    cap = frac * sum(s.demand_kw for s in stations)
    queue = suspendable(stations)
    if not queue:
        return
    runs = [allocate(cap, stations, rotation=r) for r in range(len(queue))]
    for r, alloc in enumerate(runs):
        assert_signalable(alloc, stations)
        assert alloc.suspended <= set(queue)
        assert alloc == allocate(cap, list(reversed(stations)), rotation=r)  # deterministic
    levels = {(s.station_id, c.connector_id): level(c) for s in stations for c in s.connectors}
    if any(run.suspended for run in runs):
        for key in queue:
            assert any(key in run.suspended for run in runs), key
            if committed_kw(stations) + levels[key] <= cap - 1e-9:
                assert any(key not in run.suspended for run in runs), key


@settings(max_examples=200, deadline=None)
@given(target=st.floats(0, 400), conns=connector_rows, rotation=st.integers(0, 10))
def test_property_split_station_signalable(target, conns, rotation) -> None:
    (station,) = build_zone([conns])
    limits = split_station(target, station.connectors, rotation=rotation)
    alloc_like = type("A", (), {"connectors": {station.station_id: limits}})
    assert_signalable(alloc_like, [station])
    if committed_kw([station]) <= target:
        assert sum(lim.limit_kw for lim in limits) <= target + 5e-3
