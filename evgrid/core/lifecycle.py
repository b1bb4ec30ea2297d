"""The life of DR events in one zone: SCHEDULED → ACTIVE → ENDED.

The cap is anchored to the zone's load at activation and held for the whole event. (The seed
recomputed the reduction from the *current* load every window, so once stations complied the
next window cut again and the zone ratcheted down to zero.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

SCHEDULED, ACTIVE, ENDED = "SCHEDULED", "ACTIVE", "ENDED"
NEW, REPLACED, IGNORED, RESTORED, UNKNOWN = "new", "replaced", "ignored", "restored", "unknown"


@dataclass(frozen=True, slots=True)
class DRSignal:
    signal_id: str
    zone_id: str
    signal_type: str  # CURTAIL | SHED | RESTORE
    target_reduction_kw: float
    start_ts: float
    end_ts: float
    priority: int  # 1 emergency, 2 economic, 3 optional
    received_ts: float


@dataclass(slots=True)
class DREvent:
    signal: DRSignal
    state: str = SCHEDULED
    baseline_kw: float | None = None
    # Per station, per connector load at activation: the demand a station keeps through the
    # event, so complying (drawing less) never lowers its share.
    station_baseline: dict[str, dict[int, float]] = field(default_factory=dict)
    activated_at: float | None = None
    ended_at: float | None = None

    @property
    def cap_kw(self) -> float | None:
        if self.baseline_kw is None:
            return None
        return max(0.0, self.baseline_kw - self.signal.target_reduction_kw)

    @property
    def may_suspend(self) -> bool:
        """SHED and emergencies may stop charging altogether: no floors."""
        return self.signal.signal_type == "SHED" or self.signal.priority == 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["station_baseline"] = {
            sid: [[cid, kw] for cid, kw in conns.items()]
            for sid, conns in self.station_baseline.items()
        }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DREvent:
        return cls(
            signal=DRSignal(**d["signal"]),
            state=d["state"],
            baseline_kw=d["baseline_kw"],
            station_baseline={
                sid: {int(cid): kw for cid, kw in conns}
                for sid, conns in d["station_baseline"].items()
            },
            activated_at=d["activated_at"],
            ended_at=d["ended_at"],
        )


Baseline = Callable[[], tuple[float, dict[str, dict[int, float]]]]


class EventBook:
    """All DR events of one zone, by signal_id."""

    def __init__(self) -> None:
        self.events: dict[str, DREvent] = {}

    def receive(self, sig: DRSignal, now: float) -> str:
        """Apply a signal; says what it did (new, replaced, ignored, restored, unknown)."""
        known = self.events.get(sig.signal_id)
        if sig.signal_type == "RESTORE":
            if known is None:
                return UNKNOWN
            if known.state == ENDED:
                return IGNORED
            known.state, known.ended_at = ENDED, now
            return RESTORED
        if known is None:
            self.events[sig.signal_id] = DREvent(signal=sig)
            return NEW
        if sig.received_ts <= known.signal.received_ts or known.state == ENDED:
            return IGNORED
        known.signal = sig  # the baseline stays: only the end and the target move
        return REPLACED

    def advance(self, now: float, baseline: Baseline) -> list[DREvent]:
        """Move events along by time; returns those whose state changed."""
        changed = []
        for ev in self.ordered():
            if ev.state == SCHEDULED and ev.signal.end_ts <= now:
                ev.state, ev.ended_at = ENDED, now  # its whole window passed before it arrived
                changed.append(ev)
            elif ev.state == SCHEDULED and ev.signal.start_ts <= now:
                ev.state, ev.activated_at = ACTIVE, now
                ev.baseline_kw, ev.station_baseline = baseline()
                changed.append(ev)
            elif ev.state == ACTIVE and ev.signal.end_ts <= now:
                ev.state, ev.ended_at = ENDED, now
                changed.append(ev)
        return changed

    def purge(self, now: float, retention_s: float) -> int:
        old = [
            sid
            for sid, ev in self.events.items()
            if ev.state == ENDED and ev.ended_at is not None and now - ev.ended_at > retention_s
        ]
        for sid in old:
            del self.events[sid]
        return len(old)

    def ordered(self) -> list[DREvent]:
        return sorted(self.events.values(), key=lambda e: (e.signal.start_ts, e.signal.signal_id))

    def active(self) -> list[DREvent]:
        return [e for e in self.ordered() if e.state == ACTIVE]

    def governing(self) -> DREvent | None:
        """With several active events the lowest cap wins."""
        active = self.active()
        if not active:
            return None
        return min(active, key=lambda e: (e.cap_kw, e.signal.start_ts, e.signal.signal_id))

    def next_deadline(self) -> float | None:
        times = [
            e.signal.start_ts if e.state == SCHEDULED else e.signal.end_ts
            for e in self.events.values()
            if e.state != ENDED
        ]
        return min(times, default=None)

    def to_dict(self) -> list[dict]:
        return [e.to_dict() for e in self.ordered()]

    @classmethod
    def from_dict(cls, items: list[dict]) -> EventBook:
        book = cls()
        for d in items:
            ev = DREvent.from_dict(d)
            book.events[ev.signal.signal_id] = ev
        return book
