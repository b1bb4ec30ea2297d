"""One zone as its owner sees it: its stations, its load against capacity, its overload alarm."""

from __future__ import annotations

from evgrid.core.overload import RAISED, HysteresisAlarm
from evgrid.core.types import StationRow


class ZoneLoad:
    __slots__ = ("_capacity", "_loads", "_total", "alarm", "stations", "zone_id")

    def __init__(self, zone_id: str, hysteresis_pct: float = 2.0) -> None:
        self.zone_id = zone_id
        self.stations: dict[str, StationRow] = {}
        self.alarm = HysteresisAlarm(hysteresis_pct=hysteresis_pct)
        # Running totals as of each station's last update: O(1) per reading instead of a
        # pass over the zone. `summary` and ticks recompute exactly (staleness moves on).
        self._loads: dict[str, float] = {}
        self._total = 0.0
        self._capacity = 0.0

    def upsert(self, row: StationRow, now: float | None = None, stale_after_s: float = 120.0
               ) -> None:
        sid = row.station_id
        old = self.stations.get(sid)
        if old is not None:
            self._capacity -= old.config.max_station_kw
        self.stations[sid] = row
        self._capacity += row.config.max_station_kw
        load = row.load_kw(now, stale_after_s) if now is not None else 0.0
        self._total += load - self._loads.get(sid, 0.0)
        self._loads[sid] = load

    def remove(self, station_id: str) -> bool:
        row = self.stations.pop(station_id, None)
        if row is None:
            return False
        self._capacity -= row.config.max_station_kw
        self._total -= self._loads.pop(station_id, 0.0)
        return True

    def running_total_kw(self) -> float:
        return self._total

    def total_kw(self, now: float, stale_after_s: float) -> float:
        """Exact total at `now`; also resets the running total to it."""
        self._loads = {
            sid: row.load_kw(now, stale_after_s) for sid, row in self.stations.items()
        }
        self._total = sum(self._loads.values())
        self._capacity = sum(row.config.max_station_kw for row in self.stations.values())
        return self._total

    def capacity_kw(self) -> float:
        return self._capacity

    def summary(self, now: float, stale_after_s: float) -> dict:
        loads = [row.load_kw(now, stale_after_s) for row in self.stations.values()]
        total = sum(loads)
        capacity = self.capacity_kw()
        return {
            "zone_id": self.zone_id,
            "zone_total_power_kw": round(total, 6),
            "zone_capacity_kw": capacity,
            "utilization_pct": round(100.0 * total / capacity, 3) if capacity > 0 else 0.0,
            "stations_active": sum(1 for kw in loads if kw > 0),
            "stations": len(loads),
        }

    def check_overload(
        self, now: float, stale_after_s: float, exact: bool = True
    ) -> dict | None:
        """ZONE_OVERLOAD / _CLEARED fields on an episode edge of load against capacity.
        `exact=False` uses the running total (per reading); ticks pass `exact=True`."""
        total = self.total_kw(now, stale_after_s) if exact else self._total
        capacity = self.capacity_kw()
        if capacity <= 0 and not self.alarm.active:
            return None
        edge = self.alarm.update(total, capacity, now)
        if edge is None:
            return None
        return {
            "alert_type": "ZONE_OVERLOAD" if edge == RAISED else "ZONE_OVERLOAD_CLEARED",
            "zone_id": self.zone_id,
            "total_power_kw": round(total, 3),
            "capacity_kw": capacity,
            "overload_kw": round(max(0.0, total - capacity), 3),
            "detected_at": now,
        }
