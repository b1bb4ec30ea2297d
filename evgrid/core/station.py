"""One station as the station side sees it: its connectors' latest readings and its windows.

Runs once per meter reading, so `apply` is a couple of dict operations plus the window update;
`to_dict` is written to a RocksDB table after every reading, so it is positional and compact.
"""

from __future__ import annotations

from evgrid.core.types import ConnectorReading, Tunables, live_power_kw
from evgrid.core.windows import StationWindows


def _reading_to_list(c: ConnectorReading) -> list:
    """ConnectorReading in field order: a third of the bytes of its dict."""
    return [
        c.connector_id,
        c.connector_type,
        c.power_kw,
        c.event_ts,
        c.session_id,
        c.current_a,
        c.voltage_v,
        c.energy_kwh,
        c.soc_percent,
    ]


def _reading_from(v: list | dict) -> ConnectorReading:
    return ConnectorReading(*v) if isinstance(v, list) else ConnectorReading.from_dict(v)


class StationState:
    """Latest reading per connector (the load) and the station's event-time windows (stats)."""

    __slots__ = ("connectors", "late_dropped", "windows")

    def __init__(
        self,
        window_s: float = 60.0,
        allowed_lateness_s: float = 60.0,
        stale_after_s: float = 120.0,
        keep_windows: int = 5,
    ) -> None:
        self.connectors: dict[int, ConnectorReading] = {}
        self.windows = StationWindows(window_s, allowed_lateness_s, stale_after_s, keep_windows)
        self.late_dropped = 0  # readings too late for their window (still count for the load)

    @classmethod
    def from_tunables(cls, t: Tunables) -> StationState:
        return cls(t.window_s, t.allowed_lateness_s, t.stale_after_s)

    def apply(self, reading: ConnectorReading) -> bool:
        """Take a reading. One not newer than the connector's current one (out of order or a
        duplicate delivery) changes nothing and returns False."""
        current = self.connectors.get(reading.connector_id)
        if current is not None and reading.event_ts <= current.event_ts:
            return False
        self.connectors[reading.connector_id] = reading
        if not self.windows.add(reading):
            self.late_dropped += 1
        return True

    def load_kw(self, now: float, stale_after_s: float) -> float:
        """Sum of the connectors' latest power; a stale connector counts 0."""
        total = 0.0
        for c in self.connectors.values():
            total += live_power_kw(c, now, stale_after_s)
        return total

    def forget_idle(self, now: float, forget_after_s: float) -> int:
        """Drop connectors silent for longer than `forget_after_s`, so state stays bounded.
        (Their window carry has long expired: forget_after_s >> stale limit.)"""
        gone = [cid for cid, c in self.connectors.items() if now - c.event_ts > forget_after_s]
        for cid in gone:
            del self.connectors[cid]
        return len(gone)

    def to_dict(self) -> dict:
        return {
            "c": [_reading_to_list(c) for c in self.connectors.values()],
            "w": self.windows.to_dict(),
            "late": self.late_dropped,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationState:
        """Also reads the older layout (connectors as dicts, raw-sample windows)."""
        st = cls.__new__(cls)
        st.connectors = {r.connector_id: r for r in map(_reading_from, d["c"])}
        st.windows = StationWindows.from_dict(d["w"])
        st.late_dropped = d.get("late", 0)
        return st
