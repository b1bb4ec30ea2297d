"""Event-time tumbling windows per station, kept as a few samples per open window.

Faust's windowed tables expire on wall-clock time and never expire windows restored from the
changelog (DESIGN.md), so the seed's 1-minute statistics live here, in plain state.

`total_power_kw` is the sum over connectors of each connector's *time-average* power, not the
seed's `SUM(power_kw)` (which counts a connector once per sample: six 50 kW samples a minute
said 300 kW). A reading holds (sample-and-hold) until the connector's next reading, but never
beyond the stale limit. A connector's average is taken over the part of the window its readings
cover — from its first reading in the window, or from the window start when a non-stale value
carries in from before — to its last held instant: a connector that starts charging mid-window
reports the power it drew while covered, not a value diluted by the time before it plugged in.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Samples per connector: (event_ts, power_kw, session_id)
Sample = tuple[float, float, str | None]


@dataclass(frozen=True, slots=True)
class WindowStat:
    window_start: float
    window_end: float
    total_power_kw: float
    active_sessions: int
    active_connectors: int
    avg_power_per_connector_kw: float
    max_connector_power_kw: float

    def to_dict(self) -> dict:
        return {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "total_power_kw": self.total_power_kw,
            "active_sessions": self.active_sessions,
            "active_connectors": self.active_connectors,
            "avg_power_per_connector_kw": self.avg_power_per_connector_kw,
            "max_connector_power_kw": self.max_connector_power_kw,
        }


def _connector_average(
    samples: list[Sample], carry: Sample | None, start: float, end: float, stale_s: float
) -> tuple[float, float]:
    """(time-average power, covered seconds) of one connector over [start, end)."""
    points = sorted(samples)
    if carry is not None and start - carry[0] <= stale_s:
        points.insert(0, (start, carry[1], carry[2]))
    energy = covered = 0.0
    for i, (ts, kw, _) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else end
        until = min(nxt, ts + stale_s, end)
        if until > ts:
            energy += kw * (until - ts)
            covered += until - ts
    if covered <= 0.0:
        # A single reading at the very end of the window: it is all we know.
        return (points[-1][1] if points else 0.0), 0.0
    return energy / covered, covered


class StationWindows:
    """Open windows of one station: samples per connector, plus the last closed stats."""

    __slots__ = ("_carry", "_open", "closed", "keep", "lateness_s", "size_s", "stale_s",
                 "watermark")

    def __init__(
        self,
        size_s: float = 60.0,
        lateness_s: float = 60.0,
        stale_s: float = 120.0,
        keep: int = 5,
    ) -> None:
        self.size_s = size_s
        self.lateness_s = lateness_s
        self.stale_s = stale_s
        self.keep = keep
        self.watermark = 0.0
        # window start -> connector id -> samples
        self._open: dict[float, dict[int, list[Sample]]] = {}
        # connector id -> last sample of the most recently closed window (carried forward)
        self._carry: dict[int, Sample] = {}
        self.closed: list[WindowStat] = []

    def window_start(self, ts: float) -> float:
        return ts - (ts % self.size_s)

    def add(self, connector_id: int, ts: float, power_kw: float, session_id: str | None) -> bool:
        """Record a reading; False when it is too late for its window (already closed)."""
        start = self.window_start(ts)
        if start + self.size_s + self.lateness_s <= self.watermark:
            return False
        self._open.setdefault(start, {}).setdefault(connector_id, []).append(
            (ts, power_kw, session_id)
        )
        if ts > self.watermark:
            self.watermark = ts
            self.advance()
        return True

    def advance(self) -> list[WindowStat]:
        """Close windows whose end + allowed lateness has passed the watermark."""
        done = []
        for start in sorted(self._open):
            if start + self.size_s + self.lateness_s > self.watermark:
                break
            stat, self._carry = self._stat(start, self._open.pop(start))
            done.append(stat)
        if done:
            self.closed = (self.closed + done)[-self.keep :]
        return done

    def _stat(
        self, start: float, by_connector: dict[int, list[Sample]]
    ) -> tuple[WindowStat, dict[int, Sample]]:
        """The window's statistics, and the samples to carry into the next window."""
        end = start + self.size_s
        total = peak = 0.0
        sessions: set[str] = set()
        active = 0
        carry = dict(self._carry)
        carried = {cid: s for cid, s in carry.items() if cid not in by_connector}
        for cid, samples in by_connector.items():
            avg, _ = _connector_average(samples, self._carry.get(cid), start, end, self.stale_s)
            total += avg
            peak = max(peak, max(s[1] for s in samples))
            if any(s[1] > 0 for s in samples):
                active += 1
            sessions.update(s[2] for s in samples if s[2] is not None and s[1] > 0)
            carry[cid] = max(samples)
        for cid, sample in carried.items():
            avg, covered = _connector_average([], sample, start, end, self.stale_s)
            if covered > 0 and avg > 0:
                total += avg
                peak = max(peak, sample[1])
                active += 1
                if sample[2] is not None:
                    sessions.add(sample[2])
            if end - sample[0] > self.stale_s:
                del carry[cid]
        stat = WindowStat(
            window_start=start,
            window_end=end,
            total_power_kw=round(total, 6),
            active_sessions=len(sessions),
            active_connectors=active,
            avg_power_per_connector_kw=round(total / active, 6) if active else 0.0,
            max_connector_power_kw=peak,
        )
        return stat, carry

    def snapshot(self) -> list[dict]:
        """Closed windows, then the open ones as they stand (marked `open`)."""
        out = [{**w.to_dict(), "open": False} for w in self.closed]
        for start in sorted(self._open):
            out.append({**self._peek(start).to_dict(), "open": True})
        return out

    def _peek(self, start: float) -> WindowStat:
        return self._stat(start, self._open[start])[0]

    def open_windows(self) -> int:
        return len(self._open)

    def to_dict(self) -> dict:
        return {
            "size": self.size_s,
            "late": self.lateness_s,
            "stale": self.stale_s,
            "keep": self.keep,
            "wm": self.watermark,
            "open": [
                [start, [[cid, samples] for cid, samples in conns.items()]]
                for start, conns in self._open.items()
            ],
            "carry": [[cid, s] for cid, s in self._carry.items()],
            "closed": [w.to_dict() for w in self.closed],
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationWindows:
        w = cls(d["size"], d["late"], d["stale"], d["keep"])
        w.watermark = d["wm"]
        w._open = {
            start: {cid: [tuple(s) for s in samples] for cid, samples in conns}
            for start, conns in d["open"]
        }
        w._carry = {cid: tuple(s) for cid, s in d["carry"]}
        w.closed = [WindowStat(**c) for c in d["closed"]]
        return w
