"""Demand building: what each station would draw uncurtailed, and its floor and ceiling.

The zone holds one *uncurtailed demand* per station and connector while any event is active:
captured from the live load when the first event activates, and for a station that starts
charging mid-event, from its load when it is first seen drawing (before any command lowers it).
A station's demand is the larger of that and its load now, so complying never lowers its share,
and an event that activates while another holds the zone down takes its baseline from these
demands, not from the load the other event has already curtailed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from evgrid.core.allocator import ConnectorDemand, StationDemand, ac_floor_kw
from evgrid.core.types import AC_TYPES, StationRow, Tunables, live_power_kw

#: station_id -> connector_id -> uncurtailed kW
HeldDemand = dict[str, dict[int, float]]


def connector_loads(row: StationRow, now: float, stale_after_s: float) -> dict[int, float]:
    return {c.connector_id: live_power_kw(c, now, stale_after_s) for c in row.connectors}


def effective_load(
    row: StationRow, target_kw: float | None, now: float, stale_after_s: float
) -> float:
    """Live load; a commanded station whose data went stale counts at the higher of its
    last load and its target (it may still be drawing; we cannot see it)."""
    live = row.load_kw(now, stale_after_s)
    if target_kw is not None and row.connectors and live == 0.0:
        fresh = any(c.is_live(now, stale_after_s) for c in row.connectors)
        if not fresh:
            last = sum(c.power_kw for c in row.connectors)
            return max(last, target_kw)
    return live


def capture(
    held: HeldDemand, stations: Mapping[str, StationRow], commanded: Mapping[str, object],
    now: float, stale_after_s: float,
) -> None:
    """Hold the load of every station drawing that is neither held nor commanded yet: with no
    event active that is the whole zone at activation; during an event, a new session."""
    for station_id, row in stations.items():
        if station_id in held or station_id in commanded:
            continue
        loads = connector_loads(row, now, stale_after_s)
        for kw in loads.values():  # a plain loop: a pass over the whole zone at activation
            if kw > 0.0:
                held[station_id] = loads
                break


def uncurtailed_kw(
    held: HeldDemand, stations: Mapping[str, StationRow], now: float, stale_after_s: float
) -> float:
    """The zone's uncurtailed load: Σ over its stations of max(held demand, load now)."""
    total = 0
    for station_id, row in stations.items():  # a plain loop: asked at each activation
        load = row.load_kw(now, stale_after_s)
        station_held = held.get(station_id)
        was = sum(station_held.values()) if station_held else 0
        total += load if load > was else was  # max(was, load)
    return total


def station_demand(
    row: StationRow, held: Mapping[int, float], may_suspend: bool, effective_kw: float,
    t: Tunables, now: float,
) -> StationDemand:
    """d, m and M of the allocation rule for one station, per connector too."""
    conns = []
    floors = 0.0
    stale = t.stale_after_s
    limits = row.config.connector_max_kw or {}
    inf = math.inf
    phases, voltage_v = t.ac_phases, t.ac_voltage_v
    for c in row.connectors:  # in connector-id order; a plain loop: asked per station
        connector_id = c.connector_id
        live = live_power_kw(c, now, stale)
        if may_suspend or not (c.session_active and live > 0.0):
            floor = 0.0
        elif c.connector_type in AC_TYPES:
            floor = ac_floor_kw(phases, voltage_v, t.ac_min_current_a)
        else:
            floor = t.dc_min_kw
        floors += floor
        was = held.get(connector_id, 0.0)
        conns.append(ConnectorDemand(
            connector_id, c.connector_type, live if live > was else was, floor,
            limits.get(c.connector_type, inf), phases, voltage_v))
    held_kw = sum(held.values())
    return StationDemand(
        row.station_id, effective_kw if effective_kw > held_kw else held_kw, floors,
        row.config.ceiling_kw([c.connector_type for c in conns] if limits else None),
        tuple(conns),
    )
