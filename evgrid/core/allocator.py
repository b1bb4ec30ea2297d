"""Proportional water-filling of a zone cap over its stations.

Each station i has a demand d, a floor m and a ceiling M. Its target is
`t = clamp(λ·d, m, min(d, M))` with one λ for the whole zone, chosen so that Σt = C: everyone
gives up the same share of their demand, and what a station cannot give because of its floor is
taken from the others in proportion. λ is solved exactly (Σt is piecewise linear in λ), not by
bisection, so results are deterministic and Σt = C to float precision.

A floor above what a station can use (an EV drawing 3 kW on a charger whose DC minimum is 5 kW)
must not push its target above its demand: the effective floor is `min(m, min(d, M))`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConnectorDemand:
    connector_id: int
    connector_type: str  # "CCS" | "CHAdeMO" | "Type2"
    demand_kw: float
    floor_kw: float
    ceiling_kw: float
    phases: int = 3
    voltage_v: float = 230.0


@dataclass(frozen=True, slots=True)
class StationDemand:
    station_id: str
    demand_kw: float
    floor_kw: float
    ceiling_kw: float
    connectors: tuple[ConnectorDemand, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectorLimit:
    connector_id: int
    connector_type: str
    limit_kw: float
    limit_a: float | None


@dataclass(frozen=True, slots=True)
class Allocation:
    cap_kw: float
    targets: dict[str, float]
    connectors: dict[str, tuple[ConnectorLimit, ...]]
    shortfall_kw: float


def ac_floor_kw(phases: int = 3, voltage_v: float = 230.0, min_current_a: float = 6.0) -> float:
    """The lowest AC power short of suspending: 6 A per phase (IEC 61851-1 PWM)."""
    return phases * voltage_v * min_current_a / 1000.0


def _check(name: str, value: float) -> None:
    if not (value >= 0.0) or math.isnan(value):  # catches NaN and negatives
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def water_fill(
    cap_kw: float, demands: Sequence[float], floors: Sequence[float], uppers: Sequence[float]
) -> list[float]:
    """Targets t_i = clamp(λ·d_i, min(m_i, u_i), u_i) with Σt = cap where reachable.

    Returns the uppers when they fit under the cap, the (effective) floors when even those
    exceed it."""
    _check("cap_kw", cap_kw)
    n = len(demands)
    if not n == len(floors) == len(uppers):
        raise ValueError("demands, floors and uppers must have the same length")
    lows: list[float] = []
    for i in range(n):
        _check("demand", demands[i])
        _check("floor", floors[i])
        _check("upper", uppers[i])
        lows.append(min(floors[i], uppers[i]))
    if sum(uppers) <= cap_kw:
        return list(uppers)
    if sum(lows) >= cap_kw:
        return lows
    # Breakpoints of Σt(λ): where a station leaves its floor (λ = lo/d) or reaches its upper
    # (λ = u/d). Between breakpoints Σt is linear with slope Σ d over stations in between.
    events: list[tuple[float, float, float]] = []  # (λ, Δslope, Δconstant)
    constant = 0.0
    for d, lo, up in zip(demands, lows, uppers, strict=True):
        constant += lo
        if d <= 0.0 or up <= lo:
            continue
        events.append((lo / d, d, -lo))  # from here t = λ·d instead of lo
        events.append((up / d, -d, up))  # from here t = up instead of λ·d
    events.sort()
    slope = 0.0
    lam_prev = 0.0
    for lam, d_slope, d_const in events:
        value = constant + slope * lam
        if value >= cap_kw and slope > 0.0:
            lam_star = (cap_kw - constant) / slope
            return _targets(max(lam_prev, lam_star), demands, lows, uppers)
        slope += d_slope
        constant += d_const
        lam_prev = lam
    lam_star = (cap_kw - constant) / slope if slope > 0 else lam_prev
    return _targets(lam_star, demands, lows, uppers)


def _targets(
    lam: float, demands: Sequence[float], lows: Sequence[float], uppers: Sequence[float]
) -> list[float]:
    return [min(max(lam * d, lo), up) for d, lo, up in zip(demands, lows, uppers, strict=True)]


def split_station(target_kw: float, connectors: Sequence[ConnectorDemand]) -> tuple[
    ConnectorLimit, ...
]:
    """Split a station's target over its connectors by the same rule; AC also in amperes
    (rounded down to the one decimal OCPP limits carry, so the amps never exceed the kW)."""
    ordered = sorted(connectors, key=lambda c: c.connector_id)
    uppers = [min(c.demand_kw, c.ceiling_kw) for c in ordered]
    if sum(uppers) <= 0.0 and ordered:
        # Nothing draws now: give the budget where it is allowed, so a car that plugs in
        # mid-event may still start within the station's target.
        uppers = [min(c.ceiling_kw, target_kw) for c in ordered]
        demands = [1.0 if u > 0 else 0.0 for u in uppers]
    else:
        demands = [c.demand_kw for c in ordered]
    limits = water_fill(
        min(target_kw, sum(uppers)) if ordered else 0.0,
        demands,
        [c.floor_kw for c in ordered],
        uppers,
    )
    out = []
    for c, kw in zip(ordered, limits, strict=True):
        amps = None
        if c.connector_type == "Type2":
            amps = math.floor(kw * 1000.0 / (c.phases * c.voltage_v) * 10.0) / 10.0
        out.append(ConnectorLimit(c.connector_id, c.connector_type, round(kw, 3), amps))
    return tuple(out)


def allocate(cap_kw: float, stations: Sequence[StationDemand]) -> Allocation:
    """Targets for every station (deterministic whatever the input order)."""
    ordered = sorted(stations, key=lambda s: s.station_id)
    if len({s.station_id for s in ordered}) != len(ordered):
        raise ValueError("station ids must be unique")
    uppers = [min(s.demand_kw, s.ceiling_kw) for s in ordered]
    floors = [s.floor_kw for s in ordered]
    targets = water_fill(cap_kw, [s.demand_kw for s in ordered], floors, uppers)
    lows = sum(min(f, u) for f, u in zip(floors, uppers, strict=True))
    return Allocation(
        cap_kw=cap_kw,
        targets={s.station_id: t for s, t in zip(ordered, targets, strict=True)},
        connectors={
            s.station_id: split_station(t, s.connectors)
            for s, t in zip(ordered, targets, strict=True)
        },
        shortfall_kw=max(0.0, lows - cap_kw),
    )
