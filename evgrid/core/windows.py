"""Event-time tumbling windows per station, kept as a few numbers per connector per open window.

Faust's windowed tables expire on wall-clock time and never expire windows restored from the
changelog (faust-streaming #385), so the 1-minute statistics live here, in plain state.

Semantics:

* `total_power_kw` is the sum over connectors of each connector's *time-average* power, not the
  sum of the samples (six 50 kW samples a minute would say 300 kW; this says 50).
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
* Time line: a reading is placed at the time its station gives (`add(reading, ts)`): its
  `event_ts`, corrected by the station's measured clock offset when that exceeds the allowed
  lateness (core/clock.py). Every time in here is on that line.
* Compact: one `_Acc` (slots, floats shared with the reading where they are the same number)
  per connector per open window — a few dozen bytes, not a list of boxed floats.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from evgrid.core.types import DEFAULTS, ConnectorReading

#: A carried value: (placed ts, power_kw, session_id)
Held = tuple[float, float, "str | None"]


def _find(accs: list[_Acc], connector_id: int) -> _Acc | None:
    for acc in accs:
        if acc.connector_id == connector_id:
            return acc
    return None


def _sessions(session_ids: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The session ids an accumulator saw (stored as one string while there is just one)."""
    if session_ids is None:
        return ()
    return (session_ids,) if isinstance(session_ids, str) else session_ids


def _with_session(
    session_ids: str | tuple[str, ...] | None, session_id: str
) -> str | tuple[str, ...]:
    if session_ids is None or session_ids == session_id:
        return session_id
    if isinstance(session_ids, str):
        return (session_ids, session_id)
    return session_ids if session_id in session_ids else (*session_ids, session_id)


class _Acc:
    """One connector in one open window: held energy and covered seconds so far, the last
    reading (held until the next), the peak and the session ids seen (None, one id, or a
    tuple of them: most windows see one session, and a tuple costs more than one string). A
    window's accumulators are a short list, found by `connector_id` (smaller than a dict of
    them)."""

    __slots__ = ("connector_id", "covered", "energy", "first", "kw", "last", "peak",
                 "session_id", "session_ids")

    def __init__(self, connector_id: int, ts: float, kw: float, session_id: str | None) -> None:
        self.connector_id = connector_id
        self.first = self.last = ts
        self.kw = self.peak = kw
        self.session_id = session_id
        self.energy = self.covered = 0.0
        self.session_ids: str | tuple[str, ...] | None = session_id

    def to_dict(self) -> dict:
        return {
            "connector_id": self.connector_id,
            "first_ts": self.first,
            "last_ts": self.last,
            "power_kw": self.kw,
            "session_id": self.session_id,
            "energy_kws": self.energy,
            "covered_s": self.covered,
            "max_power_kw": self.peak,
            "session_ids": list(_sessions(self.session_ids)),
        }

    @classmethod
    def from_dict(cls, d: dict) -> _Acc:
        acc = cls(d["connector_id"], d["first_ts"], d["power_kw"], d["session_id"])
        acc.last = d["last_ts"]
        acc.energy = d["energy_kws"]
        acc.covered = d["covered_s"]
        acc.peak = d["max_power_kw"]
        ids = d["session_ids"]
        acc.session_ids = None if not ids else ids[0] if len(ids) == 1 else tuple(ids)
        return acc


@dataclass(frozen=True, slots=True)
class WindowStat:
    """One closed (or, in a snapshot, still open) window's statistics, epoch seconds."""

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
        """The values in field order (comparisons in tests)."""
        return [
            self.window_start,
            self.window_end,
            self.total_power_kw,
            self.active_sessions,
            self.active_connectors,
            self.avg_power_per_connector_kw,
            self.max_connector_power_kw,
        ]


#: Numbers stored per closed window (window_end is window_start + window_s).
_STAT_FIELDS = 6


def _stat_numbers(s: WindowStat) -> tuple[float, ...]:
    return (s.window_start, s.total_power_kw, s.active_sessions, s.active_connectors,
            s.avg_power_per_connector_kw, s.max_connector_power_kw)


class StationWindows:
    """One station's open windows (a few numbers per connector each), carry and recent stats."""

    __slots__ = (
        "_carry",
        "_closed",
        "_closed_end",
        "_open",
        "allowed_lateness_s",
        "keep",
        "stale_after_s",
        "watermark",
        "window_s",
    )

    def __init__(
        self,
        window_s: float = DEFAULTS.window_s,
        allowed_lateness_s: float = DEFAULTS.allowed_lateness_s,
        stale_after_s: float = DEFAULTS.stale_after_s,
        keep: int = 5,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s
        self.allowed_lateness_s = allowed_lateness_s
        self.stale_after_s = stale_after_s
        self.keep = keep
        self.watermark = -math.inf
        # window start -> its connectors' accumulators
        self._open: dict[float, list[_Acc]] = {}
        # connector id -> value held at `_closed_end` (only non-stale ones are kept)
        self._carry: dict[int, Held] = {}
        self._closed_end: float | None = None  # end of the last closed window
        # the last `keep` closed windows, oldest first, _STAT_FIELDS numbers each: a
        # WindowStat object per closed window would cost more than the station's readings
        self._closed = array("d")

    def window_start(self, ts: float) -> float:
        return ts - ts % self.window_s

    # -- hot path ----------------------------------------------------------------------------

    def add(self, reading: ConnectorReading, ts: float | None = None) -> bool:
        """Feed one reading, placed at `ts` (default: its event_ts). False (nothing changed)
        when its window is already closed or it is not newer than the connector's previous
        reading."""
        if ts is None:
            ts = reading.event_ts
        start = ts - ts % self.window_s
        if start + self.window_s + self.allowed_lateness_s <= self.watermark:
            return False
        connector_id = reading.connector_id
        if ts <= self.watermark and not self._in_order(connector_id, start, ts):
            return False
        kw = reading.power_kw
        session_id = reading.session_id
        conns = self._open.get(start)
        if conns is None:
            conns = self._open[start] = []
        acc = _find(conns, connector_id)
        if acc is None:
            conns.append(_Acc(connector_id, ts, kw, session_id))
        else:
            held = min(ts, acc.last + self.stale_after_s) - acc.last
            if held > 0.0:
                acc.energy += acc.kw * held
                acc.covered += held
            acc.last = ts
            acc.kw = kw
            acc.session_id = session_id
            if kw > acc.peak:
                acc.peak = kw
            if session_id is not None and session_id is not acc.session_ids:
                acc.session_ids = _with_session(acc.session_ids, session_id)
        if ts > self.watermark:
            self.watermark = ts
            self.advance()
        return True

    def _in_order(self, connector_id: int, start: float, ts: float) -> bool:
        """Slow path for readings at or behind the watermark: is `ts` newer than everything
        this connector has in the open windows?"""
        for wstart, conns in self._open.items():
            acc = _find(conns, connector_id)
            if acc is not None and (wstart > start or acc.last >= ts):
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
            for stat in done[-self.keep:]:
                self._closed.extend(_stat_numbers(stat))
            extra = len(self._closed) - self.keep * _STAT_FIELDS
            if extra > 0:
                del self._closed[:extra]
        return done

    @property
    def closed_end(self) -> float | None:
        """`window_end` of the newest closed window kept (None: none yet), without building
        them: asked after every reading."""
        c = self._closed
        return c[-_STAT_FIELDS] + self.window_s if c else None

    @property
    def closed(self) -> list[WindowStat]:
        """The last `keep` closed windows, oldest first."""
        c, w = self._closed, self.window_s
        return [
            WindowStat(c[i], c[i] + w, c[i + 1], int(c[i + 2]), int(c[i + 3]), c[i + 4],
                       c[i + 5])
            for i in range(0, len(c), _STAT_FIELDS)
        ]

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
            accs: list[_Acc] = []
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
        self, start: float, accs: list[_Acc], carry: dict[int, Held], upto: float | None
    ) -> tuple[WindowStat, dict[int, Held]]:
        """The window's statistic and the values it carries out (non-stale at its end)."""
        end = start + self.window_s
        cap = end if upto is None else min(end, upto)
        stale = self.stale_after_s
        total = peak = 0.0
        active = anonymous = 0
        sessions: set[str] = set()
        out: dict[int, Held] = {}
        for acc in accs:
            connector_id = acc.connector_id
            energy, covered, mx = acc.energy, acc.covered, acc.peak
            session_ids = _sessions(acc.session_ids)
            held_in = carry.get(connector_id)
            if held_in is not None:
                hold = min(acc.first, held_in[0] + stale) - start
                if hold > 0.0:
                    energy += held_in[1] * hold
                    covered += hold
                    mx = max(mx, held_in[1])
                    if held_in[2] is not None and held_in[2] not in session_ids:
                        session_ids = (*session_ids, held_in[2])
            last = acc.last
            tail = min(cap, last + stale) - last
            if tail > 0.0:
                energy += acc.kw * tail
                covered += tail
            if last + stale > end:
                out[connector_id] = (last, acc.kw, acc.session_id)
            if covered <= 0.0:
                continue
            avg = energy / covered
            total += avg
            peak = max(peak, mx)
            if avg > 0.0:
                active += 1
                if not session_ids:
                    anonymous += 1
            sessions.update(session_ids)
        with_readings = {acc.connector_id for acc in accs}
        for connector_id, held_in in carry.items():
            if connector_id in with_readings:
                continue
            ts, kw, session_id = held_in
            if ts + stale > end:
                out[connector_id] = held_in
            if min(cap, ts + stale) - start <= 0.0:
                continue
            total += kw
            peak = max(peak, kw)
            if kw > 0.0:
                active += 1
                if session_id is None:
                    anonymous += 1
            if session_id is not None:
                sessions.add(session_id)
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
        """Plain data with named fields (the state layer versions the layout)."""
        return {
            "window_s": self.window_s,
            "allowed_lateness_s": self.allowed_lateness_s,
            "stale_after_s": self.stale_after_s,
            "keep": self.keep,
            "watermark": self.watermark if self.watermark != -math.inf else None,
            "closed_end": self._closed_end,
            "open": [
                {"window_start": start,
                 "connectors": [acc.to_dict() for acc in conns]}
                for start, conns in self._open.items()
            ],
            "carry": [
                {"connector_id": connector_id, "held_since": ts, "power_kw": kw,
                 "session_id": session_id}
                for connector_id, (ts, kw, session_id) in self._carry.items()
            ],
            "closed": [w.to_dict() for w in self.closed],
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationWindows:
        if "window_s" not in d:  # an earlier layout: start afresh, keep the watermark
            w = cls(d.get("ws", d.get("size", 60.0)), d.get("lt", d.get("late", 60.0)),
                    d.get("st", d.get("stale", 120.0)))
            if d.get("wm"):
                w.watermark = d["wm"]
            return w
        w = cls(d["window_s"], d["allowed_lateness_s"], d["stale_after_s"], d["keep"])
        if d["watermark"] is not None:
            w.watermark = d["watermark"]
        w._closed_end = d["closed_end"]
        w._open = {
            o["window_start"]: [_Acc.from_dict(a) for a in o["connectors"]]
            for o in d["open"]
        }
        w._carry = {
            c["connector_id"]: (c["held_since"], c["power_kw"], c["session_id"])
            for c in d["carry"]
        }
        for c in d["closed"][-w.keep:]:
            w._closed.extend(_stat_numbers(WindowStat(**c)))
        return w
