"""One station as the station side sees it: its connectors' latest readings and its windows."""

from __future__ import annotations

from evgrid.core.types import ConnectorReading, live_power_kw
from evgrid.core.windows import StationWindows


class StationState:
    __slots__ = ("connectors", "late_dropped", "windows")

    def __init__(
        self,
        window_s: float = 60.0,
        allowed_lateness_s: float = 60.0,
        stale_after_s: float = 120.0,
    ) -> None:
        self.connectors: dict[int, ConnectorReading] = {}
        self.windows = StationWindows(window_s, allowed_lateness_s, stale_after_s)
        self.late_dropped = 0

    def apply(self, reading: ConnectorReading) -> bool:
        """Take a reading. A reading not newer than the connector's current one changes
        nothing and returns False (out-of-order or duplicate delivery)."""
        current = self.connectors.get(reading.connector_id)
        if current is not None and reading.event_ts <= current.event_ts:
            return False
        self.connectors[reading.connector_id] = reading
        if not self.windows.add(
            reading.connector_id, reading.event_ts, reading.power_kw, reading.session_id
        ):
            self.late_dropped += 1
        return True

    def load_kw(self, now: float, stale_after_s: float) -> float:
        return sum(live_power_kw(c, now, stale_after_s) for c in self.connectors.values())

    def forget_idle(self, now: float, forget_after_s: float) -> int:
        """Drop connectors silent for that long, so state stays bounded."""
        gone = [cid for cid, c in self.connectors.items() if now - c.event_ts > forget_after_s]
        for cid in gone:
            del self.connectors[cid]
        return len(gone)

    def to_dict(self) -> dict:
        return {
            "c": [c.to_dict() for c in self.connectors.values()],
            "w": self.windows.to_dict(),
            "late": self.late_dropped,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationState:
        st = cls.__new__(cls)
        st.connectors = {
            r.connector_id: r for r in (ConnectorReading.from_dict(c) for c in d["c"])
        }
        st.windows = StationWindows.from_dict(d["w"])
        st.late_dropped = d["late"]
        return st
