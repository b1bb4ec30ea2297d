"""Event-time tumbling windows per station, kept as a few numbers per connector per open window.

Faust's windowed tables expire on wall-clock time and never expire windows restored from the
changelog (DESIGN.md), so the seed's 1-minute statistics live here, in plain state.

Semantics (written down in DESIGN terms):

* `total_power_kw` is the sum over connectors of each connector's *time-average* power, not the
  seed's `SUM(power_kw)` (six 50 kW samples a minute said 300 kW; this says 50).
* Sample-and-hold: a reading holds from its `event_ts` until the connector's next reading, but
  never beyond the stale limit (`event_ts + stale_after_s`, the same rule as the live load). The
  last reading of a window carries into the next window(s) while it is not stale, so a window
  with no reading of its own still gets a statistic while a held value covers it.
* Partial coverage: a connector's average is energy / *covered* seconds, i.e. over the part of
  the window its (held) readings cover, not over the whole window. A connector that plugs in at
  mid-window at 50 kW reports 50 kW, not 25; one that goes silent (stale) mid-window reports
  what it drew while it was reporting. A window's energy is therefore not total × window length.
* Lateness: the watermark is the largest `event_ts` seen. A window closes once
  `window_end + allowed_lateness_s <= watermark`; a reading for a closed window is ignored and
  `add` returns False so the caller can count it. Per connector, readings must be newer than that
  connector's previous one (StationState guarantees it); an older one is also ignored — so each
  connector's accumulator only ever grows at its end, which keeps it to a few numbers.
* Active connectors: connectors whose average in the window is > 0. Active sessions: distinct
  session ids held in the window, plus one per drawing connector that has no session id
  (matching `ConnectorReading.session_active`).
* Bounded: closed windows are reduced to a `WindowStat` (the last `keep` are kept for display),
  carried values are dropped once stale; open windows are at most lateness/size + 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evgrid.core.types import ConnectorReading

#: A carried value: (event_ts, power_kw, session_id)
Held = tuple[float, float, "str | None"]

# Accumulator of one connector in one open window: a list, mutated in place on the hot path.
_FIRST, _LAST, _KW, _SID, _ENERGY, _COVERED, _MAX, _SIDS = range(8)


@dataclass(frozen=True, slots=True)
class WindowStat:
    """One closed (or, in a snapshot, still open) window: the seed's fields, epoch seconds."""

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

    def to_list(self) -> list:
        """Positional form for storage (field order)."""
        return [
            self.window_start,
            self.window_end,
            self.total_power_kw,
            self.active_sessions,
            self.active_connectors,
            self.avg_power_per_connector_kw,
            self.max_connector_power_kw,
        ]


class StationWindows:
    """One station's open windows (a few numbers per connector each), carry and recent stats."""

    __slots__ = (
        "_carry",
        "_closed_end",
        "_open",
        "allowed_lateness_s",
        "closed",
        "keep",
        "stale_after_s",
        "watermark",
        "window_s",
    )

    def __init__(
        self,
        window_s: float = 60.0,
        allowed_lateness_s: float = 60.0,
        stale_after_s: float = 120.0,
        keep: int = 5,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s
        self.allowed_lateness_s = allowed_lateness_s
        self.stale_after_s = stale_after_s
        self.keep = keep
        self.watermark = -math.inf
        # window start -> connector id -> accumulator (see _FIRST.._SIDS)
        self._open: dict[float, dict[int, list]] = {}
        # connector id -> value held at `_closed_end` (only non-stale ones are kept)
        self._carry: dict[int, Held] = {}
        self._closed_end: float | None = None  # end of the last closed window
        self.closed: list[WindowStat] = []  # the last `keep` closed windows, oldest first

    def window_start(self, ts: float) -> float:
        return ts - ts % self.window_s

    # -- hot path ----------------------------------------------------------------------------

    def add(self, reading: ConnectorReading) -> bool:
        """Feed one reading. False (nothing changed) when its window is already closed or it is
        not newer than the connector's previous reading."""
        ts = reading.event_ts
        start = ts - ts % self.window_s
        if start + self.window_s + self.allowed_lateness_s <= self.watermark:
            return False
        cid = reading.connector_id
        if ts <= self.watermark and not self._in_order(cid, start, ts):
            return False
        kw = reading.power_kw
        sid = reading.session_id
        conns = self._open.get(start)
        if conns is None:
            conns = self._open[start] = {}
        acc = conns.get(cid)
        if acc is None:
            conns[cid] = [ts, ts, kw, sid, 0.0, 0.0, kw, [] if sid is None else [sid]]
        else:
            held = min(ts, acc[_LAST] + self.stale_after_s) - acc[_LAST]
            if held > 0.0:
                acc[_ENERGY] += acc[_KW] * held
                acc[_COVERED] += held
            acc[_LAST] = ts
            acc[_KW] = kw
            acc[_SID] = sid
            if kw > acc[_MAX]:
                acc[_MAX] = kw
            if sid is not None and sid not in acc[_SIDS]:
                acc[_SIDS].append(sid)
        if ts > self.watermark:
            self.watermark = ts
            self.advance()
        return True

    def _in_order(self, cid: int, start: float, ts: float) -> bool:
        """Slow path for readings at or behind the watermark: is `ts` newer than everything
        this connector has in the open windows?"""
        for wstart, conns in self._open.items():
            acc = conns.get(cid)
            if acc is not None and (wstart > start or acc[_LAST] >= ts):
                return False
        return True

    def advance(self, watermark: float | None = None) -> list[WindowStat]:
        """Close every window whose end + allowed lateness <= watermark; returns them.

        `watermark` may move the watermark forward (e.g. a timer flushing a silent station);
        it never moves back."""
        if watermark is not None and watermark > self.watermark:
            self.watermark = watermark
        last = self.watermark - self.window_s - self.allowed_lateness_s
        nxt = self._closed_end if self._carry else (min(self._open) if self._open else None)
        if nxt is None or nxt > last:
            return []
        done = self._walk(last, commit=True, upto=None)
        if done:
            self.closed.extend(done)
            if len(self.closed) > self.keep:
                del self.closed[: len(self.closed) - self.keep]
        return done

    # -- window statistics -------------------------------------------------------------------

    def _walk(self, last: float, commit: bool, upto: float | None) -> list[WindowStat]:
        """Windows from the first unclosed one up to start `last`, in order, each fed the value
        carried out of the one before (gap windows covered only by a held value included)."""
        carry = self._carry
        prev_end = self._closed_end
        starts = sorted(self._open)
        i, n = 0, len(starts)
        half = self.window_s * 0.5
        out: list[WindowStat] = []
        while True:
            if carry and prev_end is not None:
                start = prev_end
                if i < n and starts[i] - start < half:  # same grid slot (float-safe)
                    start = starts[i]
            elif i < n:
                start = starts[i]
            else:
                break
            if start > last:
                break
            accs: dict[int, list] = {}
            if i < n and starts[i] == start:
                accs = self._open.pop(start) if commit else self._open[start]
                i += 1
            stat, carry = self._stat(start, accs, carry, upto)
            out.append(stat)
            prev_end = start + self.window_s
        if commit:
            self._carry = carry
            if out:
                self._closed_end = prev_end
        return out

    def _stat(
        self, start: float, accs: dict[int, list], carry: dict[int, Held], upto: float | None
    ) -> tuple[WindowStat, dict[int, Held]]:
        """The window's statistic and the values it carries out (non-stale at its end)."""
        end = start + self.window_s
        cap = end if upto is None else min(end, upto)
        stale = self.stale_after_s
        total = peak = 0.0
        active = anonymous = 0
        sessions: set[str] = set()
        out: dict[int, Held] = {}
        for cid, acc in accs.items():
            energy, covered, mx = acc[_ENERGY], acc[_COVERED], acc[_MAX]
            sids = acc[_SIDS]
            held_in = carry.get(cid)
            if held_in is not None:
                hold = min(acc[_FIRST], held_in[0] + stale) - start
                if hold > 0.0:
                    energy += held_in[1] * hold
                    covered += hold
                    mx = max(mx, held_in[1])
                    if held_in[2] is not None and held_in[2] not in sids:
                        sids = [*sids, held_in[2]]
            last = acc[_LAST]
            tail = min(cap, last + stale) - last
            if tail > 0.0:
                energy += acc[_KW] * tail
                covered += tail
            if last + stale > end:
                out[cid] = (last, acc[_KW], acc[_SID])
            if covered <= 0.0:
                continue
            avg = energy / covered
            total += avg
            peak = max(peak, mx)
            if avg > 0.0:
                active += 1
                if not sids:
                    anonymous += 1
            sessions.update(sids)
        for cid, held_in in carry.items():
            if cid in accs:
                continue
            ts, kw, sid = held_in
            if ts + stale > end:
                out[cid] = held_in
            if min(cap, ts + stale) - start <= 0.0:
                continue
            total += kw
            peak = max(peak, kw)
            if kw > 0.0:
                active += 1
                if sid is None:
                    anonymous += 1
            if sid is not None:
                sessions.add(sid)
        stat = WindowStat(
            window_start=start,
            window_end=end,
            total_power_kw=round(total, 6),
            active_sessions=len(sessions) + anonymous,
            active_connectors=active,
            avg_power_per_connector_kw=round(total / active, 6) if active else 0.0,
            max_connector_power_kw=peak,
        )
        return stat, out

    # -- views and storage -------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> list[dict]:
        """Closed windows, then the open ones as they stand (`open` marks which). With `now`,
        an open window's held values count only up to max(now, watermark), not its end."""
        out = [{**w.to_dict(), "open": False} for w in self.closed]
        if self._open or self._carry:
            upto = None if now is None else max(now, self.watermark)
            last = self.window_start(self.watermark)
            out.extend({**w.to_dict(), "open": True} for w in self._walk(last, False, upto))
        return out

    def open_windows(self) -> int:
        return len(self._open)

    def to_dict(self) -> dict:
        return {
            "ws": self.window_s,
            "lt": self.allowed_lateness_s,
            "st": self.stale_after_s,
            "k": self.keep,
            "wm": self.watermark if self.watermark != -math.inf else None,
            "ce": self._closed_end,
            "o": [[s, [[cid, *acc] for cid, acc in c.items()]] for s, c in self._open.items()],
            "cy": [[cid, *held] for cid, held in self._carry.items()],
            "cl": [w.to_list() for w in self.closed],
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationWindows:
        if "ws" not in d:  # an older layout kept raw samples: start afresh, keep the watermark
            w = cls(d.get("size", 60.0), d.get("late", 60.0), d.get("stale", 120.0))
            if d.get("wm"):
                w.watermark = d["wm"]
            return w
        w = cls(d["ws"], d["lt"], d["st"], d["k"])
        if d["wm"] is not None:
            w.watermark = d["wm"]
        w._closed_end = d["ce"]
        w._open = {s: {a[0]: a[1:] for a in conns} for s, conns in d["o"]}
        w._carry = {c[0]: (c[1], c[2], c[3]) for c in d["cy"]}
        w.closed = [WindowStat(*c) for c in d["cl"]]
        return w
