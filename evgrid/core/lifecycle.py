"""The life of DR events in one zone: SCHEDULED → ACTIVE → ENDED.

The cap is anchored to the zone's *uncurtailed* load at activation and held for the whole
event. (Recomputing the reduction from the *current* load every window would ratchet: once
stations comply, the next window cuts again, and the zone goes down to zero.)

The book keeps live (scheduled or active) events apart from ended ones: the hot path iterates
only the live ones, bounded by `max_live`; ended events are kept for retention in end order, so
purging is a pop from the front, never a scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SCHEDULED, ACTIVE, ENDED = "SCHEDULED", "ACTIVE", "ENDED"
NEW, REPLACED, IGNORED, RESTORED, UNKNOWN = "new", "replaced", "ignored", "restored", "unknown"
#: A new event beyond the zone's `max_events_per_zone`: bad input, never state.
REFUSED = "too_many_events"
#: How an event ended: its end time passed, or a RESTORE arrived.
BY_END, BY_RESTORE = "END", "RESTORE"


@dataclass(frozen=True, slots=True)
class DRSignal:
    """One `grid.demand_response` message. Exactly one of the three targets is set (none only
    for RESTORE): a reduction in kW, a reduction in % of the baseline, or an absolute cap."""

    signal_id: str
    zone_id: str
    signal_type: str  # CURTAIL | SHED | RESTORE
    target_reduction_kw: float | None
    start_ts: float
    end_ts: float
    priority: int  # 1 emergency, 2 economic, 3 optional
    received_ts: float
    target_reduction_pct: float | None = None
    cap_kw: float | None = None

    def to_dict(self) -> dict:
        return {
            "signal_id": self.signal_id,
            "zone_id": self.zone_id,
            "signal_type": self.signal_type,
            "target_reduction_kw": self.target_reduction_kw,
            "target_reduction_pct": self.target_reduction_pct,
            "cap_kw": self.cap_kw,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "priority": self.priority,
            "received_ts": self.received_ts,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DRSignal:
        return cls(
            signal_id=d["signal_id"],
            zone_id=d["zone_id"],
            signal_type=d["signal_type"],
            target_reduction_kw=d["target_reduction_kw"],
            start_ts=d["start_ts"],
            end_ts=d["end_ts"],
            priority=d["priority"],
            received_ts=d["received_ts"],
            target_reduction_pct=d.get("target_reduction_pct"),
            cap_kw=d.get("cap_kw"),
        )


def resolve_cap_kw(signal: DRSignal, baseline_kw: float) -> float:
    """The zone cap a signal asks for, from the event's (uncurtailed) baseline."""
    if signal.cap_kw is not None:
        return max(0.0, signal.cap_kw)
    if signal.target_reduction_pct is not None:
        return max(0.0, baseline_kw * (1.0 - signal.target_reduction_pct / 100.0))
    return max(0.0, baseline_kw - (signal.target_reduction_kw or 0.0))


@dataclass(slots=True)
class DREvent:
    signal: DRSignal
    state: str = SCHEDULED
    baseline_kw: float | None = None
    activated_at: float | None = None
    ended_at: float | None = None
    ended_by: str | None = None  # BY_END | BY_RESTORE

    @property
    def signal_id(self) -> str:
        return self.signal.signal_id

    @property
    def cap_kw(self) -> float | None:
        """Resolved from the baseline held since activation: an update moves the target, never
        the baseline."""
        if self.baseline_kw is None:
            return None
        return resolve_cap_kw(self.signal, self.baseline_kw)

    @property
    def may_suspend(self) -> bool:
        """SHED and emergencies may stop charging altogether: no floors."""
        return self.signal.signal_type == "SHED" or self.signal.priority == 1

    def to_dict(self) -> dict:
        return {
            "signal": self.signal.to_dict(),
            "state": self.state,
            "baseline_kw": self.baseline_kw,
            "activated_at": self.activated_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DREvent:
        return cls(
            signal=DRSignal.from_dict(d["signal"]),
            state=d["state"],
            baseline_kw=d["baseline_kw"],
            activated_at=d["activated_at"],
            ended_at=d["ended_at"],
            ended_by=d["ended_by"],
        )


Baseline = Callable[[], float]


class EventBook:
    """The DR events of one zone, by signal_id: at most `max_live` scheduled or active."""

    __slots__ = ("ended", "live", "max_live")

    def __init__(self, max_live: int = 32) -> None:
        self.max_live = max_live
        self.live: dict[str, DREvent] = {}
        self.ended: dict[str, DREvent] = {}  # in the order they ended

    def get(self, signal_id: str) -> DREvent | None:
        return self.live.get(signal_id) or self.ended.get(signal_id)

    def receive(self, sig: DRSignal, now: float) -> str:
        """Apply a signal; says what it did (new, replaced, ignored, restored, unknown,
        too_many_events)."""
        if sig.signal_id in self.ended:
            return IGNORED  # an ended event is never revived, nor restored twice
        known = self.live.get(sig.signal_id)
        if sig.signal_type == "RESTORE":
            if known is None:
                return UNKNOWN
            self._end(known, now, BY_RESTORE)
            return RESTORED
        if known is None:
            if len(self.live) >= self.max_live:
                return REFUSED
            self.live[sig.signal_id] = DREvent(signal=sig)
            return NEW
        if sig.received_ts <= known.signal.received_ts:
            return IGNORED
        known.signal = sig  # the baseline stays: only the end and the target move
        return REPLACED

    def _end(self, ev: DREvent, now: float, by: str) -> None:
        ev.state, ev.ended_at, ev.ended_by = ENDED, now, by
        del self.live[ev.signal_id]
        self.ended[ev.signal_id] = ev

    def advance(self, now: float, baseline: Baseline) -> list[DREvent]:
        """Move events along by time; returns those whose state changed. Ends are applied
        before activations, so an event starting as another ends still sees the zone's
        uncurtailed demand."""
        changed = []
        for ev in self.ordered():
            if ev.state != ENDED and ev.signal.end_ts <= now:
                # An ACTIVE event's end passed, or a SCHEDULED one's whole window passed
                # before it arrived.
                self._end(ev, now, BY_END)
                changed.append(ev)
        for ev in self.ordered():
            if ev.state == SCHEDULED and ev.signal.start_ts <= now:
                ev.state, ev.activated_at = ACTIVE, now
                ev.baseline_kw = baseline()
                changed.append(ev)
        return changed

    def purge(self, now: float, retention_s: float) -> int:
        """Forget events ended longer than `retention_s` ago (oldest first, stops at the first
        one still retained)."""
        n = 0
        while self.ended:
            signal_id, ev = next(iter(self.ended.items()))
            if ev.ended_at is not None and now - ev.ended_at <= retention_s:
                break
            del self.ended[signal_id]
            n += 1
        return n

    def ordered(self) -> list[DREvent]:
        """Live events by start (deterministic)."""
        return sorted(self.live.values(), key=lambda e: (e.signal.start_ts, e.signal_id))

    def active(self) -> list[DREvent]:
        return [e for e in self.ordered() if e.state == ACTIVE]

    def governing(self) -> DREvent | None:
        """With several active events the lowest cap wins."""
        active = self.active()
        if not active:
            return None
        return min(active, key=lambda e: (e.cap_kw, e.signal.start_ts, e.signal_id))

    def next_deadline(self) -> float | None:
        times = [
            e.signal.start_ts if e.state == SCHEDULED else e.signal.end_ts
            for e in self.live.values()
        ]
        return min(times, default=None)

    def to_dict(self) -> dict:
        return {
            "live": [e.to_dict() for e in self.ordered()],
            "ended": [e.to_dict() for e in self.ended.values()],
        }

    @classmethod
    def from_dict(cls, d: dict, max_live: int = 32) -> EventBook:
        book = cls(max_live)
        for item in d["live"]:
            ev = DREvent.from_dict(item)
            book.live[ev.signal_id] = ev
        for item in d["ended"]:
            ev = DREvent.from_dict(item)
            book.ended[ev.signal_id] = ev
        return book
