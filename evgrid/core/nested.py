"""One allocation for nested limits: zone DR cap ⊇ site limits ⊇ station ceiling ⊇ connector
minimum levels.

Every station keeps the rule of `evgrid.core.allocator`: `t = clamp(λ·d, m, u)`. A site with a
limit S has its own λ_S (the water level that fills S over its stations alone); under a zone cap
with level λ a station of that site gets `clamp(min(λ, λ_S)·d, m, u)`. That is exactly a
water filling of the site first, whose result becomes each station's upper bound, then one
water filling of the zone cap over every station with those bounds: what a site cannot take
(it is full) goes to the other sites and to stations outside any site, in proportion to their
demand, and within a site equal demands get equal shares.

Minimum levels: a connector gets 0 or at least its minimum level. A site limit is physical (a
fuse, a transformer), so when the kept connectors' minimums of a site exceed its limit, the
fewest of that site's connectors are suspended, whatever their floor, in the same rotating
(station_id, connector_id) order as the zone's; the zone cap then suspends only connectors
whose floor is 0 (SHED, priority 1), as in `allocate`. When even that is not enough, every
station gets its floor and the shortfall is reported (per site and for the zone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from evgrid.core.allocator import (
    _EPS,
    DEFAULT_AC_MIN_CURRENT_A,
    DEFAULT_DC_MIN_KW,
    Allocation,
    StationDemand,
    _check,
    _StationPlan,
    split_all,
    water_fill,
)


@dataclass(frozen=True, slots=True)
class NestedAllocation:
    allocation: Allocation
    #: site_id -> how far its stations' floors exceed its limit (0: the limit holds).
    site_shortfall_kw: dict[str, float] = field(default_factory=dict)
    #: site_id -> the sum of its stations' targets.
    site_kw: dict[str, float] = field(default_factory=dict)


def _suspend(plans: list[_StationPlan], bounds: list[tuple[float, float]], members: list[int],
             budget_kw: float, rotation: int, hard: bool) -> None:
    """Pause connectors of `members` in rotation order until their floors fit `budget_kw`.
    `hard` (a site limit): any kept connector with a minimum level may be paused; otherwise
    only suspendable ones (floor 0)."""
    low = sum(bounds[i][0] for i in members)
    if low <= budget_kw + _EPS:
        return
    queue = [
        (i, j) for i in members for j in range(len(plans[i].conns))
        if plans[i].kept[j] and (
            plans[i].suspendable[j] if not hard
            else plans[i].highs[j] > 0.0 and plans[i].mins[j] > 0.0
        )
    ]
    for k in range(len(queue)):
        i, j = queue[(rotation + k) % len(queue)]
        plans[i].pause(j)
        before = bounds[i][0]
        bounds[i] = plans[i].bounds()
        low += bounds[i][0] - before
        if low <= budget_kw + _EPS:
            return


def allocate_nested(
    cap_kw: float | None,
    stations: Sequence[StationDemand],
    site_limits: Mapping[str, float],
    site_of: Mapping[str, str],
    *,
    rotation: int = 0,
    dc_min_kw: float = DEFAULT_DC_MIN_KW,
    ac_min_current_a: float = DEFAULT_AC_MIN_CURRENT_A,
) -> NestedAllocation:
    """Targets and connector limits for every station under the zone cap (None: no DR cap)
    and the limits of the sites (`site_limits`: site_id -> kW; a station whose site is not
    in it is bound by the zone cap alone). `site_of`: station_id -> site_id."""
    cap = math.inf if cap_kw is None else cap_kw
    _check("cap_kw", cap)
    for site_id, limit in site_limits.items():
        _check(f"limit of site {site_id}", limit)
    ordered = sorted(stations, key=lambda s: s.station_id)
    if len({s.station_id for s in ordered}) != len(ordered):
        raise ValueError("station ids must be unique")
    plans = [_StationPlan(s, None, dc_min_kw, ac_min_current_a, rotation) for s in ordered]
    bounds = [p.bounds() for p in plans]
    members: dict[str, list[int]] = {}
    for i, s in enumerate(ordered):
        site_id = site_of.get(s.station_id)
        if site_id is not None and site_id in site_limits:
            members.setdefault(site_id, []).append(i)
    for site_id in sorted(members):
        _suspend(plans, bounds, members[site_id], site_limits[site_id], rotation, hard=True)
    if cap_kw is not None:
        _suspend(plans, bounds, list(range(len(plans))), cap, rotation, hard=False)
    demands = [s.demand_kw for s in ordered]
    lows = [lo for lo, _ in bounds]
    uppers = [up for _, up in bounds]
    site_shortfall = {}
    for site_id, idx in sorted(members.items()):
        limit = site_limits[site_id]
        filled = water_fill(limit, [demands[i] for i in idx], [lows[i] for i in idx],
                            [uppers[i] for i in idx])
        for i, kw in zip(idx, filled, strict=True):
            uppers[i] = kw
        site_shortfall[site_id] = max(0.0, sum(min(lows[i], bounds[i][1]) for i in idx) - limit)
    targets = water_fill(cap, demands, lows, uppers)
    by_station, connectors, suspended = split_all(plans, targets, rotation, dc_min_kw,
                                                  ac_min_current_a)
    low_total = sum(min(lo, up) for lo, up in bounds)
    allocation = Allocation(cap_kw=cap, targets=by_station, connectors=connectors,
                            shortfall_kw=max(0.0, low_total - cap), suspended=suspended)
    return NestedAllocation(
        allocation=allocation,
        site_shortfall_kw=site_shortfall,
        site_kw={site_id: sum(targets[i] for i in idx) for site_id, idx in members.items()},
    )
