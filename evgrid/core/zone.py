"""One zone as its owner sees it: its stations, its load against capacity, its overload alarm.

`upsert` runs once per forwarded station row, so the zone keeps running totals (O(1) per row)
next to the exact, staleness-aware figures that `total_kw` / `summary` compute on demand.
"""

from __future__ import annotations

from evgrid.core.overload import HysteresisAlarm, zone_alert
from evgrid.core.types import DEFAULTS, StationRow


class ZoneLoad:
    """A zone's station rows, capacity (Σ max_station_kw) and ZONE_OVERLOAD alarm."""

    __slots__ = ("_capacity", "_loads", "_total", "alarm", "stations", "zone_id")

    def __init__(self, zone_id: str,
                 hysteresis_pct: float = DEFAULTS.overload_hysteresis_pct) -> None:
        self.zone_id = zone_id
        self.stations: dict[str, StationRow] = {}
        self.alarm = HysteresisAlarm(hysteresis_pct=hysteresis_pct)
        # Each station's load as of its last upsert, and their sum: cheap per row; ticks and
        # views recompute exactly (staleness moves on with time).
        self._loads: dict[str, float] = {}
        self._total = 0.0
        self._capacity = 0.0

    def upsert(
        self, row: StationRow, now: float | None = None,
        stale_after_s: float = DEFAULTS.stale_after_s,
    ) -> None:
        """Add or replace a station's row. Without `now` its load joins the running total as
        0 until the next exact `total_kw`."""
        station_id = row.station_id
        old = self.stations.get(station_id)
        if old is not None:
            self._capacity -= old.config.max_station_kw
        self.stations[station_id] = row
        self._capacity += row.config.max_station_kw
        load = row.load_kw(now, stale_after_s) if now is not None else 0.0
        self._total += load - self._loads.get(station_id, 0.0)
        self._loads[station_id] = load

    def remove(self, station_id: str) -> bool:
        row = self.stations.pop(station_id, None)
        if row is None:
            return False
        self._capacity -= row.config.max_station_kw
        self._total -= self._loads.pop(station_id, 0.0)
        if not self.stations:  # no float residue in an empty zone
            self._capacity = self._total = 0.0
        return True

    def running_total_kw(self) -> float:
        return self._total

    def total_kw(self, now: float, stale_after_s: float) -> float:
        """Exact total at `now`; also resets the running figures to exact ones."""
        self._loads = {
            station_id: row.load_kw(now, stale_after_s)
            for station_id, row in self.stations.items()
        }
        self._total = sum(self._loads.values())
        self._capacity = sum(row.config.max_station_kw for row in self.stations.values())
        return self._total

    def capacity_kw(self) -> float:
        return self._capacity

    def summary(self, now: float, stale_after_s: float) -> dict:
        """The zone summary, exact at `now` (read-only: a view may call it). One pass over
        the stations: the clock asks it of every zone every second."""
        total: float = 0  # as sum() starts: an empty zone's figures stay integers
        capacity: float = 0
        active = reporting = 0
        for row in self.stations.values():
            load = 0.0
            live = False
            for c in row.connectors:
                if c.is_live(now, stale_after_s):
                    live = True
                    load += c.power_kw
            total += load
            capacity += row.config.max_station_kw
            active += load > 0
            reporting += live
        return {
            "zone_id": self.zone_id,
            "zone_total_power_kw": round(total, 6),
            "zone_capacity_kw": capacity,
            "utilization_pct": round(100.0 * total / capacity, 3) if capacity > 0 else 0.0,
            "stations_active": active,
            "stations": len(self.stations),
            "stations_reporting": reporting,
        }

    def check_overload(self, now: float, stale_after_s: float, exact: bool = True) -> dict | None:
        """ZONE_OVERLOAD / _CLEARED alert fields on an episode edge of load against capacity.
        `exact=False` uses the running total (per row); timers pass `exact=True`. A zone with
        no capacity (no stations) cannot raise, but an open episode still clears."""
        total = self.total_kw(now, stale_after_s) if exact else self._total
        capacity = self._capacity
        if capacity <= 0 and not self.alarm.active:
            return None
        return zone_alert(self.zone_id, total, capacity, self.alarm, now)

    def to_dict(self) -> dict:
        return {
            "zone_id": self.zone_id,
            "stations": [row.to_dict() for row in self.stations.values()],
            "alarm": self.alarm.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict, now: float | None = None,
                  stale_after_s: float = DEFAULTS.stale_after_s) -> ZoneLoad:
        alarm = HysteresisAlarm.from_dict(d["alarm"])
        z = cls(d["zone_id"], alarm.hysteresis_pct)
        z.alarm = alarm
        for row in d["stations"]:
            z.upsert(StationRow.from_dict(row), now, stale_after_s)
        return z
