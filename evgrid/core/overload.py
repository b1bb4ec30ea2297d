"""Overload episodes: one alert when a load goes over its limit, one when it is back under.

A load oscillating around its limit must not alert on every reading, so raising needs the load
strictly above the limit and clearing needs it strictly below `limit * (1 - hysteresis_pct/100)`;
anything in between keeps the current state.
"""

from __future__ import annotations

from dataclasses import dataclass

from evgrid.core.types import DEFAULTS

RAISED = "RAISED"
CLEARED = "CLEARED"


@dataclass(slots=True)
class HysteresisAlarm:
    """The state of one episode: whether it is on, since when, and its peak value so far."""

    hysteresis_pct: float = DEFAULTS.overload_hysteresis_pct
    active: bool = False
    since: float | None = None
    peak: float = 0.0

    def update(self, value: float, limit: float, now: float) -> str | None:
        """Feed one measurement; RAISED or CLEARED on an episode edge, else None.

        A value of 0 (or less) also clears: nothing drawn is never an overload, even when the
        limit itself has dropped to 0 (e.g. a zone whose last station left)."""
        if not self.active:
            if value > limit:
                self.active, self.since, self.peak = True, now, value
                return RAISED
            return None
        if value > self.peak:
            self.peak = value
        if value < limit * (1.0 - self.hysteresis_pct / 100.0) or value <= 0.0:
            self.active, self.since, self.peak = False, None, 0.0
            return CLEARED
        return None

    def to_dict(self) -> dict:
        return {"hysteresis_pct": self.hysteresis_pct, "active": self.active,
                "since": self.since, "peak": self.peak}

    @classmethod
    def from_dict(cls, d: dict) -> HysteresisAlarm:
        if "h" in d:  # the earlier positional-key layout
            return cls(hysteresis_pct=d["h"], active=d["a"], since=d["s"], peak=d["p"])
        return cls(hysteresis_pct=d["hysteresis_pct"], active=d["active"], since=d["since"],
                   peak=d["peak"])


def _episode_alert(
    kind: str, subject: tuple[str, str], load_kw: float, limit: tuple[str, float],
    alarm: HysteresisAlarm, now: float,
) -> dict | None:
    """alerts.grid.overload fields (`kind` or `kind`_CLEARED) on an episode edge, else None."""
    edge = alarm.update(load_kw, limit[1], now)
    if edge is None:
        return None
    return {
        "alert_type": kind if edge == RAISED else f"{kind}_CLEARED",
        subject[0]: subject[1],
        "total_power_kw": round(load_kw, 3),
        limit[0]: limit[1],
        "overload_kw": round(max(0.0, load_kw - limit[1]), 3),
        "detected_at": now,
    }


def contract_alert(
    station_id: str, load_kw: float, contract_max_kw: float, alarm: HysteresisAlarm, now: float
) -> dict | None:
    """A station's load against its grid-connection contract."""
    return _episode_alert("CONTRACT_OVERLOAD", ("station_id", station_id), load_kw,
                          ("contract_max_kw", contract_max_kw), alarm, now)


def zone_alert(
    zone_id: str, total_kw: float, capacity_kw: float, alarm: HysteresisAlarm, now: float
) -> dict | None:
    """A zone's total against its capacity (Σ max_station_kw)."""
    return _episode_alert("ZONE_OVERLOAD", ("zone_id", zone_id), total_kw,
                          ("capacity_kw", capacity_kw), alarm, now)
