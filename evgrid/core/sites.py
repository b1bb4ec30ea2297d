"""Sites: grid connections (a transformer, a feeder, a depot's fuse) shared by stations.

A site's limit holds all the time, not only during DR. Its stations get limits when the site's
uncurtailed demand goes over its *threshold* `limit × (1 − margin_pct/100)`, and the limits are
released once that demand has stayed at or below `threshold × (1 − release_hysteresis_pct/100)`
for `hold_s`. The demand is what the site's stations would draw unlimited (evgrid.core.control
.sites), not the load the limits hold down, so a steady fleet neither releases nor re-limits:
no oscillation. Pure: `now` is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from evgrid.core.overload import HysteresisAlarm

LIMIT, RELEASE = "LIMIT", "RELEASE"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """One site of `config.sites`."""

    site_id: str
    zone_id: str
    max_kw: float
    max_current_a: float | None = None  # per phase
    margin_pct: float = 0.0

    def limit_kw(self, phases: int = 3, voltage_v: float = 230.0) -> float:
        """The site's physical limit: `max_kw`, or its current limit in kW when lower."""
        if self.max_current_a is None:
            return self.max_kw
        return min(self.max_kw, self.max_current_a * phases * voltage_v / 1000.0)

    def threshold_kw(self, phases: int = 3, voltage_v: float = 230.0) -> float:
        """Where limiting starts, and what the limited stations share."""
        return self.limit_kw(phases, voltage_v) * (1.0 - self.margin_pct / 100.0)

    def to_dict(self) -> dict:
        return {"site_id": self.site_id, "zone_id": self.zone_id, "max_kw": self.max_kw,
                "max_current_a": self.max_current_a, "margin_pct": self.margin_pct}


@dataclass(slots=True)
class SiteLimit:
    """One site's limiting state (persisted with the zone's controller)."""

    limited: bool = False
    since: float | None = None  # limited since
    below_since: float | None = None  # demand under the release level since
    alarm: HysteresisAlarm | None = None  # SITE_OVERLOAD episode (measured load > limit)

    def step(self, demand_kw: float, threshold_kw: float, release_hysteresis_pct: float,
             hold_s: float, now: float) -> str | None:
        """Feed the site's uncurtailed demand; LIMIT or RELEASE on an edge, else None."""
        if not self.limited:
            if demand_kw > threshold_kw:
                self.limited, self.since, self.below_since = True, now, None
                return LIMIT
            return None
        if demand_kw > threshold_kw * (1.0 - release_hysteresis_pct / 100.0):
            self.below_since = None
            return None
        if self.below_since is None:
            self.below_since = now
        if now - self.below_since >= hold_s:
            self.limited, self.since, self.below_since = False, None, None
            return RELEASE
        return None

    def to_dict(self) -> dict:
        return {"limited": self.limited, "since": self.since, "below_since": self.below_since,
                "alarm": None if self.alarm is None else self.alarm.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> SiteLimit:
        alarm = d.get("alarm")
        return cls(limited=d["limited"], since=d["since"], below_since=d["below_since"],
                   alarm=None if alarm is None else HysteresisAlarm.from_dict(alarm))


def site_alert(site: SiteConfig, load_kw: float, limit_kw: float, alarm: HysteresisAlarm,
               now: float) -> dict | None:
    """`SITE_OVERLOAD` when the measured load goes over the site's limit, `_CLEARED` when it
    is back under by the hysteresis: once per episode."""
    edge = alarm.update(load_kw, limit_kw, now)
    if edge is None:
        return None
    return {
        "alert_type": "SITE_OVERLOAD" if alarm.active else "SITE_OVERLOAD_CLEARED",
        "site_id": site.site_id,
        "zone_id": site.zone_id,
        "total_power_kw": round(load_kw, 3),
        "capacity_kw": round(limit_kw, 3),
        "overload_kw": round(max(0.0, load_kw - limit_kw), 3),
        "detected_at": now,
    }
