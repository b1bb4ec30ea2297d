"""Overload episodes: one alert when a load goes over its limit, one when it is back under.

A load oscillating around its limit must not alert on every reading, so clearing needs the
load to fall below the limit by a hysteresis margin.
"""

from __future__ import annotations

from dataclasses import dataclass

RAISED = "RAISED"
CLEARED = "CLEARED"


@dataclass(slots=True)
class HysteresisAlarm:
    hysteresis_pct: float = 2.0
    active: bool = False
    since: float | None = None
    peak: float = 0.0

    def update(self, value: float, limit: float, now: float) -> str | None:
        """Feed one measurement; returns RAISED or CLEARED on an episode edge, else None."""
        if not self.active:
            if value > limit:
                self.active, self.since, self.peak = True, now, value
                return RAISED
            return None
        self.peak = max(self.peak, value)
        if value < limit * (1.0 - self.hysteresis_pct / 100.0):
            self.active, self.since, self.peak = False, None, 0.0
            return CLEARED
        return None

    def to_dict(self) -> dict:
        return {"h": self.hysteresis_pct, "a": self.active, "s": self.since, "p": self.peak}

    @classmethod
    def from_dict(cls, d: dict) -> HysteresisAlarm:
        return cls(hysteresis_pct=d["h"], active=d["a"], since=d["s"], peak=d["p"])


def contract_alert(
    station_id: str, load_kw: float, contract_max_kw: float, alarm: HysteresisAlarm, now: float
) -> dict | None:
    """CONTRACT_OVERLOAD / _CLEARED fields (alerts.grid.overload) on an episode edge."""
    edge = alarm.update(load_kw, contract_max_kw, now)
    if edge is None:
        return None
    return {
        "alert_type": "CONTRACT_OVERLOAD" if edge == RAISED else "CONTRACT_OVERLOAD_CLEARED",
        "station_id": station_id,
        "total_power_kw": round(load_kw, 3),
        "contract_max_kw": contract_max_kw,
        "overload_kw": round(max(0.0, load_kw - contract_max_kw), 3),
        "detected_at": now,
    }
