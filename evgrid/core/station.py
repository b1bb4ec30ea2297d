"""One station as the station side sees it: its connectors' latest readings, its windows, and
its clock as evgrid measures it.

Runs once per meter reading, so `apply` is a couple of dict operations, the clock sample and
the window update. The clock rules (future stamps, arrival time, clock resets, offset,
windows' correction) are in core/clock.py.
"""

from __future__ import annotations

from evgrid.core.clock import StationClock, is_clock_reset
from evgrid.core.types import DEFAULTS, ConnectorReading, Tunables, live_power_kw
from evgrid.core.windows import StationWindows


def _reading_from(v: list | dict) -> ConnectorReading:
    """A stored reading; lists are the earlier positional layout."""
    return ConnectorReading(*v) if isinstance(v, list) else ConnectorReading.from_dict(v)


class StationState:
    """Latest reading per connector (the load), the station's windows (stats) and its clock."""

    __slots__ = ("clock", "clock_resets", "clock_tolerance_s", "connectors", "late_dropped",
                 "windows")

    def __init__(
        self,
        window_s: float = DEFAULTS.window_s,
        allowed_lateness_s: float = DEFAULTS.allowed_lateness_s,
        stale_after_s: float = DEFAULTS.stale_after_s,
        keep_windows: int = 5,
        clock_tolerance_s: float = DEFAULTS.future_tolerance_s,
    ) -> None:
        self.connectors: dict[int, ConnectorReading] = {}
        self.windows = StationWindows(window_s, allowed_lateness_s, stale_after_s, keep_windows)
        self.clock = StationClock()
        self.clock_tolerance_s = clock_tolerance_s  # WorkerSettings.future_tolerance_s
        self.late_dropped = 0  # readings too late for their window (still count for the load)
        self.clock_resets = 0  # readings taken as the charger's clock jumping back

    @classmethod
    def from_tunables(cls, t: Tunables) -> StationState:
        return cls(t.window_s, t.allowed_lateness_s, t.stale_after_s,
                   clock_tolerance_s=t.future_tolerance_s)

    def apply(self, reading: ConnectorReading, arrival_ts: float | None = None) -> bool:
        """Take a reading heard at `arrival_ts` (default: the reading's own `arrival_ts`).
        One not newer than the connector's current one (out of order or a duplicate delivery)
        changes nothing and returns False — unless it is a clock reset (core/clock.py).

        The caller has already refused future-stamped readings (`clock.in_future`)."""
        if arrival_ts is not None:
            reading.arrival_ts = arrival_ts
        current = self.connectors.get(reading.connector_id)
        if current is not None and reading.event_ts <= current.event_ts:
            if not is_clock_reset(current.event_ts, current.arrival_ts, reading.event_ts,
                                  reading.arrival_ts, self.clock_tolerance_s):
                return False
            self.clock_resets += 1
            self.clock.restart()
        self.clock.add(reading.arrival_ts, reading.event_ts, self.windows.allowed_lateness_s)
        self.connectors[reading.connector_id] = reading
        if not self.windows.add(reading, self.clock.place(reading.event_ts)):
            self.late_dropped += 1
        return True

    def note_future(self, event_ts: float, arrival_ts: float) -> None:
        """A reading refused as future-stamped: not state, but its clock is measured, so a
        charger whose clock runs ahead shows its offset and raises its skew alert."""
        self.clock.add(arrival_ts, event_ts, self.windows.allowed_lateness_s)

    def load_kw(self, now: float, stale_after_s: float) -> float:
        """Sum of the connectors' latest power; a connector not heard from within the stale
        limit counts 0."""
        total = 0.0
        for c in self.connectors.values():
            total += live_power_kw(c, now, stale_after_s)
        return total

    def clock_offset_s(self) -> float | None:
        """The station's measured clock offset (arrival − event time; positive: behind)."""
        return self.clock.offset_s

    def clock_summary(self) -> dict:
        """The station's clock as `/stations/{id}` shows it and metrics export it."""
        alarm = self.clock.alarm
        return {
            "clock_offset_s": self.clock.offset_s,
            "clock_correction_s": self.clock.correction_s,
            "clock_skew": alarm is not None and alarm.active,
            "clock_resets": self.clock_resets,
            "late_dropped": self.late_dropped,
        }

    def forget_idle(self, now: float, forget_after_s: float) -> int:
        """Drop connectors not heard from for longer than `forget_after_s`, so state stays
        bounded. (Their window carry has long expired: forget_after_s >> stale limit.)"""
        gone = [connector_id for connector_id, c in self.connectors.items()
                if now - c.arrival_ts > forget_after_s]
        for connector_id in gone:
            del self.connectors[connector_id]
        return len(gone)

    def to_dict(self) -> dict:
        """Plain data with named fields (the state layer versions the layout)."""
        return {
            "connectors": [c.to_dict() for c in self.connectors.values()],
            "windows": self.windows.to_dict(),
            "clock": self.clock.to_dict(),
            "clock_tolerance_s": self.clock_tolerance_s,
            "late_dropped": self.late_dropped,
            "clock_resets": self.clock_resets,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationState:
        """Also reads the earlier layout (`c`/`w`/`late`: positional readings, windows)."""
        st = cls.__new__(cls)
        if "connectors" not in d:
            st.connectors = {r.connector_id: r for r in map(_reading_from, d["c"])}
            st.windows = StationWindows.from_dict(d["w"])
            st.clock = StationClock()
            st.clock_tolerance_s = DEFAULTS.future_tolerance_s
            st.late_dropped = d.get("late", 0)
            st.clock_resets = 0
            return st
        st.connectors = {r.connector_id: r for r in map(_reading_from, d["connectors"])}
        st.windows = StationWindows.from_dict(d["windows"])
        st.clock = StationClock.from_dict(d["clock"])
        st.clock_tolerance_s = d["clock_tolerance_s"]
        st.late_dropped = d["late_dropped"]
        st.clock_resets = d["clock_resets"]
        return st
