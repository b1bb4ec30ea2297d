"""The allocator: worked examples and hypothesis properties (DESIGN.md "Allocation")."""

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
    demands = tuple(
        ConnectorDemand(i + 1, kind, d, 0.0, ceiling) for i, (kind, d, ceiling) in enumerate(conns)
    )
    limits = split_station(target, demands)
    reachable = sum(min(c.demand_kw, c.ceiling_kw) for c in demands)
    if reachable <= 0:
        reachable = sum(min(c.ceiling_kw, target) for c in demands)
    assert sum(c.limit_kw for c in limits) == pytest.approx(min(target, reachable), abs=5e-3)
    for c, lim in zip(demands, limits, strict=True):
        assert lim.limit_kw <= c.ceiling_kw + 1e-3
