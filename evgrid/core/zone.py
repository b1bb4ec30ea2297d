"""One zone as its owner sees it: its stations, its load against capacity, its overload alarm."""

from __future__ import annotations

from evgrid.core.overload import RAISED, HysteresisAlarm
from evgrid.core.types import StationRow


class ZoneLoad:
    __slots__ = ("alarm", "stations", "zone_id")

    def __init__(self, zone_id: str, hysteresis_pct: float = 2.0) -> None:
        self.zone_id = zone_id
        self.stations: dict[str, StationRow] = {}
        self.alarm = HysteresisAlarm(hysteresis_pct=hysteresis_pct)

    def upsert(self, row: StationRow) -> None:
        self.stations[row.station_id] = row

    def remove(self, station_id: str) -> bool:
        return self.stations.pop(station_id, None) is not None

    def total_kw(self, now: float, stale_after_s: float) -> float:
        return sum(row.load_kw(now, stale_after_s) for row in self.stations.values())

    def capacity_kw(self) -> float:
        return sum(row.config.max_station_kw for row in self.stations.values())

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

    def check_overload(self, now: float, stale_after_s: float) -> dict | None:
        """ZONE_OVERLOAD / _CLEARED fields on an episode edge of load against capacity."""
        total = self.total_kw(now, stale_after_s)
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
