"""A zone's sites as its controller sees them: which are limited, what their stations would
draw unlimited, and their overload episodes.

A site's demand is what its stations would draw unlimited. While the site is not limited that
is their load now. While it is limited, each connector holds the highest load of its session
since (dropped when the session ends or the connector goes stale), so a site held at
its threshold does not look like a site with room to release, and equal cars keep equal
demands whatever their limit. Pure: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from evgrid.core.control.demand import HeldDemand
from evgrid.core.overload import HysteresisAlarm
from evgrid.core.sites import SiteConfig, SiteLimit, site_alert
from evgrid.core.types import StationRow, Tunables, live_power_kw


def site_of(row: StationRow, sites: Mapping[str, SiteConfig]) -> str | None:
    """The station's site, if it names one of this zone's sites."""
    site_id = row.config.site_id
    return site_id if site_id is not None and site_id in sites else None


class SiteControl:
    def __init__(self, tunables: Tunables) -> None:
        self.t = tunables
        self.limits: dict[str, SiteLimit] = {}  # site_id -> its limiting state
        self.held: HeldDemand = {}  # station_id -> connector_id -> session's highest kW
        self.demand: dict[str, float] = {}  # site_id -> its demand at the last update

    def threshold_kw(self, site: SiteConfig) -> float:
        return site.threshold_kw(self.t.ac_phases, self.t.ac_voltage_v)

    def limit_kw(self, site: SiteConfig) -> float:
        return site.limit_kw(self.t.ac_phases, self.t.ac_voltage_v)

    def update(self, sites: Mapping[str, SiteConfig], stations: Mapping[str, StationRow],
               now: float) -> list[dict]:
        """Hold demands, step every site's limiting state; the SITE_OVERLOAD alerts due."""
        t = self.t
        for site_id in [s for s in self.limits if s not in sites]:
            del self.limits[site_id]  # a removed site: its stations are released
        limited = {s for s, state in self.limits.items() if state.limited}
        demand: dict[str, float] = dict.fromkeys(sites, 0.0)
        load: dict[str, float] = dict.fromkeys(sites, 0.0)
        seen = set()
        for station_id, row in stations.items():
            site_id = site_of(row, sites)
            if site_id is None:
                continue
            seen.add(station_id)
            held = self.held.setdefault(station_id, {})
            for c in row.connectors:
                live = live_power_kw(c, now, t.stale_after_s)
                if c.session_active and c.is_live(now, t.stale_after_s):
                    held[c.connector_id] = (max(held.get(c.connector_id, 0.0), live)
                                            if site_id in limited else live)
                else:
                    held.pop(c.connector_id, None)
                load[site_id] += live
            demand[site_id] += sum(held.values())
            if not held:
                del self.held[station_id]
        for station_id in [s for s in self.held if s not in seen]:
            del self.held[station_id]
        self.demand = demand
        alerts = []
        for site_id, site in sorted(sites.items()):
            state = self.limits.setdefault(site_id, SiteLimit())
            state.step(demand[site_id], self.threshold_kw(site), t.site_release_hysteresis_pct,
                       t.site_hold_s, now)
            if state.alarm is None:
                state.alarm = HysteresisAlarm(t.overload_hysteresis_pct)
            alert = site_alert(site, load[site_id], self.limit_kw(site), state.alarm, now)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def changes_demand(self, row: StationRow, sites: Mapping[str, SiteConfig],
                       now: float) -> bool:
        """Whether this row moves its site's demand where it matters: for a limited site, a
        connector drawing more than held or a held session that ended; for one that is not,
        a load that takes the site over its threshold (the row's loads are counted in the
        site's demand at once, so rows arriving between two steps add up)."""
        site_id = site_of(row, sites)
        if site_id is None:
            return False
        held = self.held.get(row.station_id, {})
        stale = self.t.stale_after_s
        state = self.limits.get(site_id)
        if state is None or not state.limited:
            loads = {c.connector_id: live_power_kw(c, now, stale) for c in row.connectors
                     if c.session_active and c.is_live(now, stale)}
            demand = self.demand.get(site_id, 0.0) - sum(held.values()) + sum(loads.values())
            self.demand[site_id] = demand
            if loads:
                self.held[row.station_id] = loads
            else:
                self.held.pop(row.station_id, None)
            return demand > self.threshold_kw(sites[site_id])
        for c in row.connectors:
            live = live_power_kw(c, now, stale)
            if c.session_active and c.is_live(now, stale):
                if live > held.get(c.connector_id, 0.0):
                    return True
            elif c.connector_id in held:
                return True
        return False

    def limited(self, sites: Mapping[str, SiteConfig]) -> dict[str, float]:
        """site_id -> the kW its stations share, for every limited site."""
        return {site_id: self.threshold_kw(sites[site_id])
                for site_id, state in self.limits.items()
                if state.limited and site_id in sites}

    def held_back(self, sites: Mapping[str, SiteConfig]) -> dict[str, float]:
        """site_id -> how much of its demand each limited site holds back now."""
        return {site_id: max(0.0, self.demand.get(site_id, 0.0) - kw)
                for site_id, kw in self.limited(sites).items()}

    def next_release(self, hold_s: float) -> float | None:
        """When the earliest limited site's hold ends (its demand is under the release
        level), if any."""
        return min((s.below_since + hold_s for s in self.limits.values()
                    if s.limited and s.below_since is not None), default=None)

    def limited_since(self) -> float | None:
        return min((s.since for s in self.limits.values() if s.limited and s.since is not None),
                   default=None)

    def demand_of(self, station_id: str, dr_held: Mapping[int, float]) -> Mapping[int, float]:
        """Per connector, the higher of the DR event's held demand and the session's."""
        site_held = self.held.get(station_id)
        if not site_held:
            return dr_held  # read-only, as every caller uses it
        out = dict(dr_held)
        for connector_id, kw in site_held.items():
            out[connector_id] = max(out.get(connector_id, 0.0), kw)
        return out

    def capped_uncurtailed(self, per_station: Mapping[str, float],
                           stations: Mapping[str, StationRow],
                           sites: Mapping[str, SiteConfig]) -> float:
        """The zone's uncurtailed load with its site limits kept: a limited site counts at
        most its threshold (a site limit is normal operation, never a DR event's credit)."""
        limited = self.limited(sites)
        per_site: dict[str, float] = {}
        total = 0.0
        for station_id, kw in per_station.items():
            site_id = site_of(stations[station_id], sites)
            if site_id in limited:
                per_site[site_id] = per_site.get(site_id, 0.0) + kw
            else:
                total += kw
        return total + sum(min(kw, limited[s]) for s, kw in per_site.items())

    def view(self, sites: Mapping[str, SiteConfig], stations: Mapping[str, StationRow],
             targets: Mapping[str, float], now: float) -> dict[str, dict]:
        """Per site: load, limit, threshold, headroom, limited stations (views, gauges)."""
        out: dict[str, dict] = {}
        for site_id, site in sorted(sites.items()):
            state = self.limits.get(site_id) or SiteLimit()
            members = sorted(s for s, row in stations.items()
                             if site_of(row, sites) == site_id)
            load = sum(stations[s].load_kw(now, self.t.stale_after_s) for s in members)
            limit = self.limit_kw(site)
            out[site_id] = {
                "site_id": site_id, "zone_id": site.zone_id, "max_kw": site.max_kw,
                "max_current_a": site.max_current_a, "margin_pct": site.margin_pct,
                "limit_kw": round(limit, 3), "threshold_kw": round(self.threshold_kw(site), 3),
                "load_kw": round(load, 3), "headroom_kw": round(limit - load, 3),
                "utilization_pct": round(100.0 * load / limit, 2) if limit > 0 else None,
                "demand_kw": round(sum(sum(self.held.get(s, {}).values()) for s in members), 3),
                "limited": state.limited, "limited_since": state.since,
                "overloaded": bool(state.alarm and state.alarm.active),
                "stations": members,
                "stations_limited": {s: targets[s] for s in members if s in targets},
            }
        return out

    def to_dict(self) -> dict:
        return {
            "limits": [[s, v.to_dict()] for s, v in sorted(self.limits.items())],
            "held": [[s, [[k, kw] for k, kw in sorted(h.items())]]
                     for s, h in sorted(self.held.items())],
        }

    def load(self, d: dict | None) -> None:
        if not d:
            return
        self.limits = {s: SiteLimit.from_dict(v) for s, v in d["limits"]}
        self.held = {s: {int(k): kw for k, kw in h} for s, h in d["held"]}
