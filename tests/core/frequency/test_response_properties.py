"""Properties of the response over random measurement sequences (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.frequency.program import LINEAR, STEP, FrequencyProgram
from evgrid.core.frequency.response import (
    ACTIVE,
    FALL_EVERY_S,
    IDLE,
    QUANTUM,
    RESTORING,
    FrequencyResponse,
)

T0 = 1_800_000_000.0
SILENCE = 3.0
HELD = {f"cp{i}": float(i) for i in range(7)}
PROGRAMS = [
    FrequencyProgram("z1", "a", LINEAR, 100.0, start_hz=49.90, full_hz=49.50),
    FrequencyProgram("z2", "a", LINEAR, 50.0, start_hz=50.0, full_hz=49.8, deadband_hz=0.01),
    FrequencyProgram("z3", "a", STEP, 80.0, trigger_hz=49.7, deadband_hz=0.05),
]

programs = st.builds(
    lambda p, hold, rec, spread: replace(p, min_hold_s=hold, recovery_s=rec,
                                         restore_spread_s=spread),
    st.sampled_from(PROGRAMS), st.sampled_from([0.0, 2.0, 5.0]),
    st.sampled_from([0.0, 1.0, 4.0]), st.sampled_from([0.5, 5.0, 20.0]))
# (kind, time step, frequency, how old the measurement is when it arrives)
measure_op = st.tuples(st.just("m"), st.sampled_from([0.0, 0.02, 0.1, 0.5, 1.0, 2.5]),
                       st.floats(49.3, 50.1), st.sampled_from([0.0, 0.0, 0.05, -0.2, 1.0, 4.0]))
advance_op = st.tuples(st.just("a"), st.sampled_from([0.0, 0.2, 1.0, 3.5, 20.0]),
                       st.just(0.0), st.just(0.0))
# a stretch of normal frequency: a fresh 50 Hz measurement, then time passes
normal_op = st.tuples(st.just("n"), st.sampled_from([0.5, 1.0, 2.0]), st.just(50.0),
                      st.just(0.0))
ops = st.lists(st.one_of(measure_op, advance_op, normal_op), min_size=1, max_size=120)


class Driver:
    """Runs ops on a response, checking every rule after every call."""

    def __init__(self, r: FrequencyResponse) -> None:
        self.r, self.now, self.calls = r, T0, 0
        self.last_ts: float | None = None
        self.heard: float | None = None
        self.moved_at: float | None = None

    def baseline(self) -> float:
        return 1000.0 + self.calls  # differs per call: a re-read would show

    def measure(self, hz: float, ts: float) -> bool:
        r = self.r
        accepted = (self.last_ts is None or ts >= self.last_ts) \
            and abs(self.now - ts) < r.silence_s
        changed = r.measure(hz, ts, self.now, self.baseline)
        if accepted:
            self.last_ts = ts
            t = min(ts, self.now)
            self.heard = t if self.heard is None else max(self.heard, t)
        else:
            assert not changed
        return changed

    def state(self) -> tuple:
        r = self.r
        return (r.phase, r.steps, r.activation_id, r.baseline_kw, r.started_at)

    def step(self, op: tuple) -> bool:
        kind, dt, hz, delay = op
        r = self.r
        self.now += dt
        self.calls += 1
        before = self.state()
        if kind == "n":
            changed = self.measure(hz, self.now)
            self.check(before, "m", changed)
            before = self.state()
            changed = r.advance(self.now, HELD) or changed
            kind = "a"
        elif kind == "m":
            changed = self.measure(hz, self.now - delay)
        else:
            changed = r.advance(self.now, HELD)
        self.check(before, kind, changed)
        return changed

    def check(self, before: tuple, kind: str, changed: bool) -> None:
        r, now = self.r, self.now
        phase0, steps0, id0, base0, started0 = before
        assert r.heard_at == self.heard
        level = r.level
        assert 0.0 <= level <= 1.0 and math.isclose(level / QUANTUM, round(level / QUANTUM))
        if not r.silenced:
            assert level >= r.raw - 1e-9  # rises at once (the brief's bound is raw - 1.5 Q)
        if kind == "m" and phase0 != IDLE:
            assert r.phase != IDLE or r.silenced  # a measurement never ends an activation
        if (r.phase, r.steps, r.activation_id) != (phase0, steps0, id0) and kind == "m":
            assert changed
        if r.phase == ACTIVE:
            assert r.steps >= 1 and r.activation_id is not None
            assert r.cap_kw() == max(0.0, r.baseline_kw - r.program.committed_kw * level)
            if r.activation_id == id0:
                assert (r.baseline_kw, r.started_at) == (base0, started0)  # frozen
            else:
                assert r.activation_id == f"{r.program.zone_id}:{r.started_at:.3f}"
        else:
            assert r.cap_kw() is None and r.required_kw() == 0.0 and r.steps == 0
        if phase0 == ACTIVE and r.phase == ACTIVE and r.activation_id == id0:
            if r.steps < steps0:  # a fall: one quantum, after the hold, FALL_EVERY_S apart
                assert r.steps == steps0 - 1
                assert now >= started0 + r.program.min_hold_s
                assert self.moved_at is None or now - self.moved_at >= FALL_EVERY_S
            if r.steps != steps0:
                self.moved_at = now
        elif r.phase == ACTIVE:
            self.moved_at = now
        if phase0 == ACTIVE and r.phase == RESTORING:
            assert now >= started0 + r.program.min_hold_s
            assert r.zero_since is not None and now >= r.zero_since + r.program.recovery_s
            self.check_schedule(now)
        if phase0 == ACTIVE and r.phase == IDLE:
            assert r.silenced and r.ended_id == id0
        if kind == "a" and self.heard is not None and now - self.heard >= r.silence_s:
            assert r.phase == IDLE and r.silenced  # silence disarms within silence_s

    def check_schedule(self, start: float) -> None:
        r = self.r
        times = [t for _, t, _ in r.releases]
        n, spread = len(HELD), r.program.restore_spread_s
        assert sorted(r.releases) == sorted((s, t, kw) for s, t, kw in r.releases)
        assert {s for s, _, _ in r.releases} == set(HELD)
        assert times == sorted(times) and len(set(times)) == n
        assert math.isclose(times[0], start + spread / n)
        assert math.isclose(times[-1], start + spread)


@settings(max_examples=400, deadline=None)
@given(programs, ops)
def test_rules_hold_over_random_sequences(program: FrequencyProgram, seq: list) -> None:
    d = Driver(FrequencyResponse(program, SILENCE))
    for op in seq:
        d.step(op)


@settings(max_examples=300, deadline=None)
@given(programs, ops, st.integers(0, 119))
def test_round_trip_at_any_point_gives_identical_future(
    program: FrequencyProgram, seq: list, cut: int
) -> None:
    a = Driver(FrequencyResponse(program, SILENCE))
    cut = min(cut, len(seq))
    for op in seq[:cut]:
        a.step(op)
    state = orjson.loads(orjson.dumps(a.r.to_dict()))
    b = Driver(FrequencyResponse.from_dict(state, program, SILENCE))
    b.now, b.calls, b.last_ts, b.heard, b.moved_at = a.now, a.calls, a.last_ts, a.heard, a.moved_at
    assert b.r.to_dict() == a.r.to_dict()
    for op in seq[cut:]:
        assert a.step(op) == b.step(op)
        assert a.r.to_dict() == b.r.to_dict()
        assert a.r.next_deadline(a.now) == b.r.next_deadline(b.now)
        assert a.r.ceilings(a.now) == b.r.ceilings(b.now)


@settings(max_examples=200, deadline=None)
@given(programs, st.lists(st.tuples(st.floats(0.01, 2.0), st.floats(49.3, 50.1)),
                          min_size=1, max_size=80))
def test_following_next_deadline_never_misses_anything(
    program: FrequencyProgram, seq: list
) -> None:
    """A caller that calls advance() only at next_deadline (and on measurements) sees the same
    as one that calls it every 10 ms."""
    eager, lazy = FrequencyResponse(program, SILENCE), FrequencyResponse(program, SILENCE)
    now = T0
    for gap, hz in seq:
        end = now + gap
        t = now
        while t + 0.01 < end:
            t += 0.01
            eager.advance(t, HELD)
            while (due := lazy.next_deadline(t)) is not None and due <= t \
                    and lazy.advance(t, HELD):
                pass
            assert eager.to_dict() == lazy.to_dict(), t
        now = end
        eager.measure(hz, now, now, lambda: 500.0)
        lazy.measure(hz, now, now, lambda: 500.0)
