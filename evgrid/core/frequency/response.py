"""One zone's response to its area's frequency: quantised, fast up, slow down, spread restore.

Driven by two calls, both with the caller's clock handed in:

* `measure` for every frequency measurement of the zone's area;
* `advance` whenever time passes (at least at `next_deadline`).

Phases: IDLE (nothing held) -> ACTIVE (a cap on the zone: `cap_kw`) -> RESTORING (no zone cap;
the stations still limited keep their limit until their own release time: `ceilings`) -> IDLE.
The rules (quantum, hysteresis, hold, recovery, silence, restore) are in docs/frequency.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from evgrid.core.frequency.program import STEP, FrequencyProgram, activation
from evgrid.core.frequency.restore import Release, release_schedule

QUANTUM = 0.05  # activation is commanded in steps of 5 % of committed_kw
FALL_EVERY_S = 1.0  # the level falls at most one quantum per this many seconds
IDLE, ACTIVE, RESTORING = "IDLE", "ACTIVE", "RESTORING"
#: Quanta in full activation (the level is kept as a whole number of them).
STEPS = round(1 / QUANTUM)
#: Fall only when the raw activation is this many quanta below the level (hysteresis).
FALL_GAP = 1.5
_CEIL_TOLERANCE = 1e-9


def quanta(raw: float) -> int:
    """The number of quanta at/above a raw activation (ceil, forgiving float noise)."""
    return min(STEPS, max(0, math.ceil(raw / QUANTUM - _CEIL_TOLERANCE)))


class FrequencyResponse:
    """One zone's response to its area's frequency, driven by measurements and steps."""

    def __init__(self, program: FrequencyProgram, silence_s: float) -> None:
        if not silence_s > 0:
            raise ValueError("silence_s must be > 0")
        self.program = program
        self.silence_s = float(silence_s)
        self.phase = IDLE
        self.steps = 0  # the level in quanta
        self.activation_id: str | None = None
        self.started_at: float | None = None
        self.baseline_kw: float | None = None
        self.silenced = False
        self.last_ts: float | None = None  # the newest measurement's own timestamp
        self.heard_at: float | None = None  # when it was taken (never later than now)
        self.raw = 0.0  # the newest measurement's activation (with the step's hysteresis)
        self.moved_at: float | None = None  # the level's last change
        self.zero_since: float | None = None  # raw has been 0 since
        self.restore_started: float | None = None
        self.releases: list[Release] = []  # pending releases, soonest first
        self.ended_id: str | None = None  # the last activation that ended, and when
        self.ended_at: float | None = None

    @property
    def level(self) -> float:
        """Quantised activation now, k * QUANTUM in [0, 1]."""
        return self.steps / STEPS

    # -- inputs ---------------------------------------------------------------------------

    def measure(
        self, hz: float, ts: float, now: float, baseline_kw: Callable[[], float]
    ) -> bool:
        """One measurement. Ignored (False) when older than the newest seen, when not a number,
        or when further than silence_s from now either way (stale, or from a wrong clock).
        Rises at once to the quantum at/above the raw activation; falls one quantum at a time
        (see `_may_fall`). Starting an activation calls baseline_kw() once and freezes it.
        Returns True when the level or the phase changed."""
        if not (math.isfinite(hz) and math.isfinite(ts)):
            return False
        if self.last_ts is not None and ts < self.last_ts:
            return False
        if abs(now - ts) >= self.silence_s:
            return False
        t = min(ts, now)
        self.last_ts = ts
        self.heard_at = t if self.heard_at is None else max(self.heard_at, t)
        self.silenced = False
        self.raw = raw = self._raw(hz)
        if raw > 0:
            self.zero_since = None
        elif self.zero_since is None:
            self.zero_since = t
        k = quanta(raw)
        if self.phase != ACTIVE:
            if k == 0:
                return False
            self._start(t, now, k, baseline_kw)
            return True
        if k > self.steps:
            self.steps, self.moved_at = k, now
            return True
        return self._fall(now)

    def advance(self, now: float, held: Mapping[str, float]) -> bool:
        """Time passes: silence disarms at once; ACTIVE falls or, after recovery, starts
        restoring the `held` stations (station_id -> the kW it is limited to now); RESTORING
        releases stations as their time comes and ends when none is left. True when anything
        changed."""
        if self.heard_at is not None and not self.silenced \
                and now - self.heard_at >= self.silence_s:
            self.silenced = True
            if self.phase != IDLE:
                self._end(now)
            return True
        if self.phase == ACTIVE:
            if self._recovered(now):
                assert self.activation_id is not None
                self.phase, self.steps, self.restore_started = RESTORING, 0, now
                self.releases = release_schedule(
                    self.activation_id, held, now, self.program.restore_spread_s)
                self._release(now)
                return True
            return self._fall(now)
        if self.phase == RESTORING:
            return self._release(now)
        return False

    def reprogram(self, program: FrequencyProgram) -> None:
        """A new program for the zone: an activation in progress goes on (same id, baseline
        and level); the new curve applies from the next measurement, the new committed_kw and
        timings at once."""
        self.program = program

    # -- outputs --------------------------------------------------------------------------

    def cap_kw(self) -> float | None:
        """ACTIVE: what the zone may draw, max(0, baseline_kw - committed_kw * level)."""
        if self.phase != ACTIVE or self.baseline_kw is None:
            return None
        return max(0.0, self.baseline_kw - self.required_kw())

    def required_kw(self) -> float:
        """The reduction asked for now: committed_kw * level while ACTIVE, else 0."""
        return self.program.committed_kw * self.level if self.phase == ACTIVE else 0.0

    def ceilings(self, now: float) -> dict[str, float]:
        """RESTORING: the stations not yet released -> the kW they stay limited to."""
        if self.phase != RESTORING:
            return {}
        return {sid: kw for sid, t, kw in self.releases if t > now}

    def next_deadline(self, now: float) -> float | None:
        """When advance() next has something to do (silence, recovery, release, fall)."""
        due: list[float] = []
        if self.heard_at is not None and not self.silenced:
            due.append(self.heard_at + self.silence_s)
        if self.phase == ACTIVE:
            hold = self._hold_until()
            if self.zero_since is not None:
                due.append(max(self.zero_since + self.program.recovery_s, hold))
            if self._wants_fall():
                assert self.moved_at is not None
                due.append(max(self.moved_at + FALL_EVERY_S, hold))
        elif self.phase == RESTORING:
            due.append(self.releases[0][1] if self.releases else now)
        return min(due) if due else None

    # -- state ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The whole state as plain data (the program and silence_s are the caller's)."""
        return {
            "phase": self.phase, "steps": self.steps, "activation_id": self.activation_id,
            "started_at": self.started_at, "baseline_kw": self.baseline_kw,
            "silenced": self.silenced, "last_ts": self.last_ts, "heard_at": self.heard_at,
            "raw": self.raw, "moved_at": self.moved_at, "zero_since": self.zero_since,
            "restore_started": self.restore_started,
            "releases": [[sid, t, kw] for sid, t, kw in self.releases],
            "ended_id": self.ended_id, "ended_at": self.ended_at,
        }

    @classmethod
    def from_dict(
        cls, d: dict, program: FrequencyProgram, silence_s: float
    ) -> FrequencyResponse:
        r = cls(program, silence_s)
        if d["phase"] not in (IDLE, ACTIVE, RESTORING):
            raise ValueError(f"unknown phase {d['phase']!r}")
        r.phase, r.steps = d["phase"], int(d["steps"])
        r.activation_id, r.started_at = d["activation_id"], d["started_at"]
        r.baseline_kw, r.silenced = d["baseline_kw"], bool(d["silenced"])
        r.last_ts, r.heard_at, r.raw = d["last_ts"], d["heard_at"], float(d["raw"])
        r.moved_at, r.zero_since = d["moved_at"], d["zero_since"]
        r.restore_started = d["restore_started"]
        r.releases = [(str(sid), float(t), float(kw)) for sid, t, kw in d["releases"]]
        r.ended_id, r.ended_at = d["ended_id"], d["ended_at"]
        return r

    # -- rules ----------------------------------------------------------------------------

    def _raw(self, hz: float) -> float:
        """The curve, plus the step's hysteresis: an active step stays full until the
        frequency is above trigger_hz + deadband_hz."""
        p = self.program
        if p.product == STEP and self.phase == ACTIVE and p.trigger_hz is not None:
            return 1.0 if hz <= p.trigger_hz + p.deadband_hz else 0.0
        return activation(p, hz)

    def _start(self, t: float, now: float, k: int, baseline_kw: Callable[[], float]) -> None:
        """A new activation (from IDLE, or from RESTORING: the one restoring ends here and the
        new one gets its own id and baseline)."""
        if self.phase == RESTORING:
            self._end(t)
        self.phase, self.steps, self.moved_at = ACTIVE, k, now
        self.started_at = t
        self.activation_id = f"{self.program.zone_id}:{t:.3f}"
        self.baseline_kw = float(baseline_kw())

    def _end(self, at: float) -> None:
        self.ended_id, self.ended_at = self.activation_id, at
        self.phase, self.steps = IDLE, 0
        self.activation_id = self.started_at = self.baseline_kw = None
        self.moved_at = self.zero_since = self.restore_started = None
        self.releases = []

    def _hold_until(self) -> float:
        assert self.started_at is not None
        return self.started_at + self.program.min_hold_s

    def _wants_fall(self) -> bool:
        return self.raw * STEPS < self.steps - FALL_GAP

    def _fall(self, now: float) -> bool:
        """One quantum down, when the raw activation is 1.5 quanta below the level, the last
        move was FALL_EVERY_S ago and the minimum hold has passed."""
        if not self._wants_fall() or now < self._hold_until():
            return False
        if self.moved_at is not None and now < self.moved_at + FALL_EVERY_S:
            return False
        self.steps -= 1
        self.moved_at = now
        return True

    def _recovered(self, now: float) -> bool:
        return (self.zero_since is not None
                and now >= self.zero_since + self.program.recovery_s
                and now >= self._hold_until())

    def _release(self, now: float) -> bool:
        """Drops the releases that are due; the activation ends with the last one."""
        due = 0
        while due < len(self.releases) and self.releases[due][1] <= now:
            due += 1
        if due:
            del self.releases[:due]
        if not self.releases:
            self._end(now)
            return True
        return due > 0
