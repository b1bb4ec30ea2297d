"""Proportional water-filling of a zone cap over its stations, in levels chargers can signal.

Each station i has a demand d, a floor m and a ceiling M. Its target is
`t = clamp(λ·d, m, min(d, M))` with one λ for the whole zone, chosen so that Σt = C: everyone
gives up the same share of their demand, and what a station cannot give because of its floor is
taken from the others in proportion. λ is solved exactly (Σt is piecewise linear in λ), not by
bisection, so results are deterministic and Σt = C to float precision.

A floor above what a station can use (an EV drawing 3 kW on a charger whose DC minimum is 5 kW)
must not push its target above its demand: the effective floor is `min(m, min(d, M))`.

**No limit between 0 and a connector's minimum level.** A connector's
minimum level `μ` is the lowest non-zero limit it can be sent: 6 A per phase for AC (IEC 61851-1),
the DC minimum for DC. A connector either gets 0 (suspended) or a limit in `[μ, max(u, μ)]`
(`u` = its demand capped by its type limit): a car drawing less than `μ` keeps `μ`, which it
will not use up, and the allocation counts it at `μ` (what it may draw). Only connectors whose
floor is 0 (SHED or priority 1) may be suspended; the others keep at least `μ`. A station's
ceiling is hard: when its kept connectors' minimums exceed it, suspendable ones are paused.

When the kept connectors' minimums exceed the cap, the fewest connectors are suspended: walking
the suspendable connectors of the zone in (station_id, connector_id) order, cyclically, from
position `rotation mod n`. The caller advances `rotation` over the event (`rotation_index`:
one step per rotation period), so the suspended set slides by one connector per period — each
step releases one car and pauses another, the least churn that still shares the pause fairly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from evgrid.core.types import AC_TYPES, DEFAULTS

#: The core's defaults of dc_min_kw / ac_min_current_a, for callers that do not pass them.
DEFAULT_DC_MIN_KW = DEFAULTS.dc_min_kw
DEFAULT_AC_MIN_CURRENT_A = DEFAULTS.ac_min_current_a
#: Float slack when comparing sums of minimums with a budget.
_EPS = 1e-9


#: The per-station records of an allocation (demands in, limits out) are plain slotted
#: dataclasses, not frozen ones: one decision builds several per station, and a frozen
#: dataclass's constructor costs about four times as much. Treat them as read-only.


@dataclass(slots=True)
class ConnectorDemand:
    connector_id: int
    connector_type: str  # "CCS" | "CHAdeMO" | "Type2"
    demand_kw: float
    floor_kw: float  # 0: may be suspended (SHED, priority 1, or idle); else kept ≥ min level
    ceiling_kw: float
    phases: int = 3
    voltage_v: float = 230.0
    #: Lowest non-zero limit the connector can be sent; None: 6 A per phase for AC, the DC
    #: minimum for DC (the `ac_min_current_a` / `dc_min_kw` given to allocate/split_station).
    min_kw: float | None = None


@dataclass(slots=True)
class StationDemand:
    station_id: str
    demand_kw: float
    floor_kw: float
    ceiling_kw: float
    connectors: tuple[ConnectorDemand, ...] = ()


@dataclass(slots=True)
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
    #: (station_id, connector_id) of every connector suspended (0) to meet the cap.
    suspended: frozenset[tuple[str, int]] = field(default_factory=frozenset)


def ac_floor_kw(phases: int = 3, voltage_v: float = 230.0, min_current_a: float = 6.0) -> float:
    """The lowest AC power short of suspending: 6 A per phase (IEC 61851-1 PWM)."""
    return phases * voltage_v * min_current_a / 1000.0


def rotation_index(now: float, since: float, period_s: float) -> int:
    """Which rotation of the suspended set is in force at `now` for an event active since
    `since`: one step per `period_s` (WorkerSettings.suspend_rotation_s), 0 before it starts."""
    if period_s <= 0 or now <= since:
        return 0
    return int((now - since) // period_s)


def min_level_kw(
    c: ConnectorDemand,
    dc_min_kw: float = DEFAULT_DC_MIN_KW,
    ac_min_current_a: float = DEFAULT_AC_MIN_CURRENT_A,
) -> float:
    """μ: the lowest non-zero limit this connector can be sent (and never below its floor)."""
    level = c.min_kw
    if level is None:
        level = (ac_floor_kw(c.phases, c.voltage_v, ac_min_current_a)
                 if c.connector_type in AC_TYPES else dc_min_kw)
    floor = c.floor_kw
    return floor if floor > level else level  # max(level, floor)


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
    for d, m, u in zip(demands, floors, uppers, strict=True):
        if not (d >= 0.0 and m >= 0.0 and u >= 0.0):  # NaN fails too; _check says which
            _check("demand", d)
            _check("floor", m)
            _check("upper", u)
        lows.append(u if u < m else m)  # min(m, u)
    return _fill(cap_kw, demands, lows, uppers)


def _fill(
    cap_kw: float, demands: Sequence[float], lows: Sequence[float], uppers: Sequence[float]
) -> list[float]:
    """`water_fill` of checked values whose `lows` are already at most their uppers (a
    station's own split: its values come from the allocation itself)."""
    if sum(uppers) <= cap_kw:
        return list(uppers)
    if sum(lows) >= cap_kw:
        return list(lows)
    # The usual case first: no one at a bound, so λ = cap / Σd (what the breakpoints below
    # find too, without sorting them; a frequency activation fills every station this way).
    total = sum(demands)
    if total > 0.0:
        lam = cap_kw / total
        out = []
        for d, lo, up in zip(demands, lows, uppers, strict=True):
            x = lam * d
            if x < lo or x > up:
                break
            out.append(x)
        else:
            return out
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
    out = []
    for d, lo, up in zip(demands, lows, uppers, strict=True):  # min(max(λ·d, lo), up)
        x = lam * d
        if lo > x:
            x = lo
        if up < x:
            x = up
        out.append(x)
    return out


class _StationPlan:
    """One station's connectors as the allocator sees them: who is kept, each one's minimum
    level `mins` and most it may get `highs` (0 for a connector with nothing to draw)."""

    __slots__ = ("_need", "conns", "demands", "discrete", "highs", "kept", "mins", "station",
                 "suspendable")

    def __init__(
        self, station: StationDemand, target_kw: float | None, dc_min_kw: float,
        ac_min_current_a: float, rotation: int = 0,
    ) -> None:
        self.station = station
        conns = station.connectors
        last = -math.inf
        for c in conns:  # plain loops: a plan is built per station per decision
            if c.connector_id < last:
                conns = tuple(sorted(conns, key=lambda c: c.connector_id))
                break
            last = c.connector_id
        self.conns = conns
        uppers, demands = [], []
        discrete = False
        for c in conns:
            d, ceiling = c.demand_kw, c.ceiling_kw
            u = ceiling if ceiling < d else d  # min(d, M), in min's order
            if u > 0.0:
                discrete = True
            uppers.append(u)
            demands.append(d)
        # A station whose connectors all draw nothing offers its target where it is allowed,
        # so a car that plugs in mid-event may still start (within its minimum level).
        self.discrete = discrete
        if discrete:
            self.demands = demands
        else:
            budget = 0.0 if target_kw is None else target_kw
            uppers = [min(c.ceiling_kw, budget) for c in conns]
            self.demands = [1.0 if u > 0.0 else 0.0 for u in uppers]
        mins, highs, suspendable, kept = [], [], [], []
        need = 0.0  # need_kw(), summed here in the same order
        for c, u in zip(conns, uppers, strict=True):
            if u > 0.0:
                m = min_level_kw(c, dc_min_kw, ac_min_current_a)
                h = m if m > u else u  # max(u, m)
                need += m
            else:
                m = h = 0.0
            mins.append(m)
            highs.append(h)
            kept.append(h > 0.0)
            suspendable.append(h > 0.0 and c.floor_kw <= 0.0 and m > 0.0)
        self.mins = mins
        self.highs = highs
        self.kept = kept
        self._need: float | None = need  # need_kw, until who is kept changes
        self.suspendable = suspendable
        if self.discrete:  # the station's own ceiling is hard: pause connectors to fit it
            self.suspend_until(station.ceiling_kw, rotation)

    def need_kw(self) -> float:
        """The kept connectors' minimum levels: the least this station can be given."""
        if self._need is None:
            self._need = sum(m for m, k in zip(self.mins, self.kept, strict=True) if k)
        return self._need

    def pause(self, j: int) -> None:
        """Suspend connector j (its limit will be 0)."""
        self.kept[j] = False
        self._need = None

    def bounds(self) -> tuple[float, float]:
        """(floor, upper) of the station for the zone's water filling."""
        s = self.station
        upper = min(s.demand_kw, s.ceiling_kw)
        if not self.discrete:
            return min(s.floor_kw, upper), upper
        need = self.need_kw()
        room = 0  # plain loops and comparisons, not sum/min/max: asked per station per decision
        for h, k in zip(self.highs, self.kept, strict=True):
            if k:
                room += h
        if upper < room:  # min(upper, room), then max(need, that), in their order
            room = upper
        return need, room if room > need else need

    def suspend_until(self, budget_kw: float, rotation: int) -> None:
        """Suspend this station's suspendable connectors in rotation order until the kept
        ones' minimums fit the budget (or none is left to suspend)."""
        need = self.need_kw()
        if need <= budget_kw + _EPS:
            return
        order = [j for j, ok in enumerate(self.suspendable) if ok]
        for k in range(len(order)):
            if need <= budget_kw + _EPS:
                return
            j = order[(rotation + k) % len(order)]
            if self.kept[j]:
                self.pause(j)
                need -= self.mins[j]

    def split(self, target_kw: float, rotation: int) -> tuple[
        ConnectorLimit, ...
    ]:
        """The target over the kept connectors by the water-filling rule, each at 0 or in
        [min, high]; AC also in amperes (rounded down to the one decimal OCPP limits carry)."""
        if not target_kw >= 0.0:  # NaN fails too
            _check("target_kw", target_kw)
        self.suspend_until(target_kw, rotation)
        kept = self.kept
        # A kept connector's floor is its minimum level (its high is at least that).
        if all(kept):
            values = _fill(target_kw, self.demands, self.mins, self.highs)
        else:
            values = _fill(
                target_kw,
                [d if k else 0.0 for d, k in zip(self.demands, kept, strict=True)],
                [m if k else 0.0 for m, k in zip(self.mins, kept, strict=True)],
                [h if k else 0.0 for h, k in zip(self.highs, kept, strict=True)],
            )
        out = []
        for c, kw, m, k in zip(self.conns, values, self.mins, kept, strict=True):
            limit = 0.0
            if k and kw > 0.0:
                limit = round(kw, 3)
                if m > limit:  # max(round(kw, 3), m)
                    limit = m
            amps = None
            if c.connector_type in AC_TYPES:
                # + 1e-6: 4.14 kW on 3 x 230 V is 6.0 A, not 5.9 through float rounding
                amps = math.floor(limit * 1000.0 / (c.phases * c.voltage_v) * 10.0 + 1e-6) / 10.0
            out.append(ConnectorLimit(c.connector_id, c.connector_type, limit, amps))
        return tuple(out)

    def suspended_ids(self) -> list[int]:
        return [c.connector_id for c, h, k in zip(self.conns, self.highs, self.kept, strict=True)
                if h > 0.0 and not k]


def split_all(
    plans: Sequence[_StationPlan], targets: Sequence[float], rotation: int, dc_min_kw: float,
    ac_min_current_a: float,
) -> tuple[dict[str, float], dict[str, tuple[ConnectorLimit, ...]], frozenset[tuple[str, int]]]:
    """Each station's target over its connectors: the targets and connector limits by
    station_id, and the (station_id, connector_id) of every connector suspended."""
    by_station: dict[str, float] = {}
    connectors: dict[str, tuple[ConnectorLimit, ...]] = {}
    suspended: list[tuple[str, int]] = []
    for p, t in zip(plans, targets, strict=True):
        if not p.discrete:  # idle station: the plan depends on its target
            p = _StationPlan(p.station, t, dc_min_kw, ac_min_current_a, rotation)
        station_id = p.station.station_id
        by_station[station_id] = t
        connectors[station_id] = p.split(t, rotation)
        if not all(p.kept):
            suspended.extend((station_id, connector_id) for connector_id in p.suspended_ids())
    return by_station, connectors, frozenset(suspended)


def split_station(
    target_kw: float,
    connectors: Sequence[ConnectorDemand],
    *,
    rotation: int = 0,
    dc_min_kw: float = DEFAULT_DC_MIN_KW,
    ac_min_current_a: float = DEFAULT_AC_MIN_CURRENT_A,
) -> tuple[ConnectorLimit, ...]:
    """Split one station's target over its connectors (same rule, same minimum levels):
    suspendable connectors are paused in rotation order when the target is under the kept
    connectors' minimums."""
    station = StationDemand("", math.inf, 0.0, math.inf, tuple(connectors))
    plan = _StationPlan(station, target_kw, dc_min_kw, ac_min_current_a, rotation)
    return plan.split(target_kw, rotation)


def allocate(
    cap_kw: float,
    stations: Sequence[StationDemand],
    *,
    rotation: int = 0,
    dc_min_kw: float = DEFAULT_DC_MIN_KW,
    ac_min_current_a: float = DEFAULT_AC_MIN_CURRENT_A,
) -> Allocation:
    """Targets for every station and limits for every connector (deterministic whatever the
    input order). `rotation` picks who is suspended when the minimums exceed the cap; pass
    `rotation_index(now, event_start, WorkerSettings.suspend_rotation_s)`."""
    _check("cap_kw", cap_kw)
    ordered = sorted(stations, key=lambda s: s.station_id)
    if len({s.station_id for s in ordered}) != len(ordered):
        raise ValueError("station ids must be unique")
    plans = [_StationPlan(s, None, dc_min_kw, ac_min_current_a, rotation) for s in ordered]
    bounds = [p.bounds() for p in plans]
    low_total = sum(lo for lo, _ in bounds)
    if low_total > cap_kw + _EPS:
        queue = [(i, j) for i, p in enumerate(plans) for j, ok in enumerate(p.suspendable) if ok]
        for k in range(len(queue)):
            i, j = queue[(rotation + k) % len(queue)]
            plans[i].pause(j)
            before = bounds[i][0]
            bounds[i] = plans[i].bounds()
            low_total += bounds[i][0] - before
            if low_total <= cap_kw + _EPS:
                break
        low_total = sum(lo for lo, _ in bounds)  # exact again, no running float residue
    targets = water_fill(
        cap_kw, [s.demand_kw for s in ordered], [lo for lo, _ in bounds],
        [up for _, up in bounds],
    )
    by_station, connectors, suspended = split_all(plans, targets, rotation, dc_min_kw,
                                                  ac_min_current_a)
    return Allocation(cap_kw=cap_kw, targets=by_station, connectors=connectors,
                      shortfall_kw=max(0.0, low_total - cap_kw), suspended=suspended)
