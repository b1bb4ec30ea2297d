"""The quantised response: fast up, slow down, hold, recovery, silence, and restoring state."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from evgrid.core.frequency.program import LINEAR, STEP, FrequencyProgram, activation
from evgrid.core.frequency.response import (
    ACTIVE,
    FALL_EVERY_S,
    IDLE,
    QUANTUM,
    RESTORING,
    FrequencyResponse,
    quanta,
)

T0 = 1_800_000_000.0
SILENCE = 5.0
FCR = FrequencyProgram("z2", "DE", LINEAR, 50.0, start_hz=50.0, full_hz=49.8,
                       deadband_hz=0.01, full_activation_s=30.0)
FCR_D = FrequencyProgram("z1", "SE3", LINEAR, 100.0, start_hz=49.90, full_hz=49.50,
                         half_activation_s=5.0, min_hold_s=10.0, recovery_s=20.0,
                         restore_spread_s=300.0)
STEP_PRODUCT = FrequencyProgram("z3", "SE3", STEP, 80.0, trigger_hz=49.7, deadband_hz=0.05,
                                min_hold_s=5.0, recovery_s=10.0, restore_spread_s=60.0)


class Baseline:
    """A baseline source that counts its calls (it must be asked once per activation)."""

    def __init__(self, kw: float = 1000.0) -> None:
        self.kw, self.calls = kw, 0

    def __call__(self) -> float:
        self.calls += 1
        return self.kw


def is_quantised(level: float) -> bool:
    return 0.0 <= level <= 1.0 and abs(level / QUANTUM - round(level / QUANTUM)) < 1e-9


def test_quanta_ceil_with_tolerance() -> None:
    assert quanta(0.0) == 0
    assert quanta(1e-12) == 0
    assert quanta(0.01) == 1
    assert quanta(0.05) == 1
    assert quanta(0.2500000000000355) == 5  # (50.0 - 49.95) / 0.2 in floats
    assert quanta(0.2501) == 6
    assert quanta(1.0) == 20


def test_a_dip_by_hand() -> None:
    r = FrequencyResponse(FCR_D, 30.0)
    base = Baseline(500.0)
    assert r.measure(50.0, T0, T0, base) is False and r.phase == IDLE and base.calls == 0
    # 49.70 Hz: (49.90 - 49.70) / 0.40 = 0.5 -> 10 quanta, 50 kW of 100 committed
    assert r.measure(49.70, T0 + 1, T0 + 1.2, base) is True
    assert (r.phase, r.level, r.required_kw(), r.cap_kw()) == (ACTIVE, 0.5, 50.0, 450.0)
    assert r.activation_id == "z1:1800000001.000" and r.started_at == T0 + 1
    assert r.baseline_kw == 500.0 and base.calls == 1
    # 49.50 Hz: full at once
    assert r.measure(49.50, T0 + 2, T0 + 2, base) is True
    assert (r.level, r.cap_kw()) == (1.0, 400.0)
    # back to 49.80 Hz (raw 0.25): no fall before the 10 s hold
    assert r.measure(49.80, T0 + 3, T0 + 3, base) is False and r.level == 1.0
    assert r.next_deadline(T0 + 3) == T0 + 1 + 10.0  # the hold ends at started_at + 10
    assert r.advance(T0 + 10.9, {}) is False and r.level == 1.0
    r.measure(49.80, T0 + 10.9, T0 + 10.9, base)
    # after the hold: one quantum per second, down to 0.30 (raw 0.25 is not 1.5 quanta below)
    levels = []
    now = T0 + 11.0
    while (due := r.next_deadline(now)) is not None and due < T0 + 11 + 60:
        now = due
        r.measure(49.80, now, now, base)  # keeps the source alive
        r.advance(now, {})
        levels.append((round(now - T0, 3), r.level))
        if r.level == 0.3:
            break
    falls = [t for t, _ in levels]
    assert [lv for _, lv in levels] == [pytest.approx(1.0 - QUANTUM * i) for i in
                                        range(1, 15)]
    assert all(b - a >= FALL_EVERY_S for a, b in itertools.pairwise(falls))
    assert base.calls == 1


def test_rises_fast_falls_slowly_with_hysteresis() -> None:
    r = FrequencyResponse(FCR, SILENCE)
    t = T0
    r.measure(49.95, t, t, Baseline())  # 0.25 -> 5 quanta
    assert r.level == 0.25
    # 0.19 is 1.2 quanta below: no fall, however long
    for i in range(1, 40):
        r.measure(50.0 - 0.19 * 0.2, t + i, t + i, Baseline())
        r.advance(t + i, {})
        assert r.level == 0.25
    # 0.17 is 1.6 quanta below: one fall to 0.20, then stays (0.17 > 0.20 - 0.075)
    r.measure(50.0 - 0.17 * 0.2, t + 40, t + 40, Baseline())
    assert r.level == 0.20
    for i in range(41, 60):
        r.measure(50.0 - 0.17 * 0.2, t + i, t + i, Baseline())
        r.advance(t + i, {})
    assert r.level == 0.20
    # a jump up is immediate, whatever the last move's time
    assert r.measure(49.80, t + 60.01, t + 60.01, Baseline()) is True and r.level == 1.0


def test_older_stale_and_future_measurements_are_ignored() -> None:
    r = FrequencyResponse(FCR, SILENCE)
    r.measure(49.95, T0 + 10, T0 + 10, Baseline())
    assert r.measure(49.80, T0 + 9, T0 + 10, Baseline()) is False and r.level == 0.25
    assert r.measure(49.80, T0 + 11 - SILENCE, T0 + 11, Baseline()) is False
    assert r.measure(49.80, T0 + 11 + SILENCE, T0 + 11, Baseline()) is False
    assert r.measure(float("nan"), T0 + 11, T0 + 11, Baseline()) is False
    assert r.level == 0.25 and r.last_ts == T0 + 10
    assert r.measure(49.80, T0 + 10, T0 + 11, Baseline()) is True  # equal ts is accepted
    assert r.level == 1.0


def test_stale_measurement_never_starts_an_activation() -> None:
    r = FrequencyResponse(FCR, SILENCE)
    base = Baseline()
    assert r.measure(49.5, T0, T0 + SILENCE, base) is False
    assert r.phase == IDLE and base.calls == 0


def noisy(center: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [center + rng.uniform(-0.003, 0.003) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_noise_inside_one_quantum_changes_the_level_once(seed: int) -> None:
    # 49.955 Hz +/- 3 mHz: raw 0.21..0.24, every sample's ceiling is 0.25
    r = FrequencyResponse(FCR, SILENCE)
    changes = 0
    for i, hz in enumerate(noisy(49.955, 600, seed)):
        now = T0 + i / 10
        changes += r.measure(hz, now, now, Baseline())
        changes += r.advance(now, {})
    assert changes == 1 and r.level == 0.25


@pytest.mark.parametrize("seed", range(5))
def test_noise_across_a_quantum_boundary_changes_once_per_quantum(seed: int) -> None:
    # 49.95 Hz +/- 3 mHz: raw 0.235..0.265, straddling 0.25: the level may take 0.25 then
    # 0.30, never back down (0.235 > 0.30 - 0.075): at most one change per quantum touched.
    samples = noisy(49.95, 600, seed)
    touched = {quanta(activation(FCR, hz)) for hz in samples}
    assert touched == {5, 6}
    r = FrequencyResponse(FCR, SILENCE)
    levels = []
    for i, hz in enumerate(samples):
        now = T0 + i / 10
        if r.measure(hz, now, now, Baseline()) | r.advance(now, {}):
            levels.append(r.level)
    assert 1 <= len(levels) <= len(touched)
    assert levels == sorted(levels) and levels[-1] == 0.30


def test_recovery_then_spread_restore_then_idle() -> None:
    r = FrequencyResponse(FCR_D, SILENCE)
    r.measure(49.5, T0, T0, Baseline())
    held = {f"cp{i}": 7.0 + i for i in range(10)}
    t = T0
    # frequency normal from T0 + 0.5: hold (10 s) and recovery (20 s of raw 0) -> T0 + 20.5
    while t < T0 + 20 - 1e-9:
        t = round(t + 0.5, 6)
        r.measure(50.0, t, t, Baseline())
        r.advance(t, held)
        assert r.phase == ACTIVE, t
    t = T0 + 20.5
    assert r.next_deadline(t) == t
    r.measure(50.0, t, t, Baseline())
    assert r.advance(t, held) is True and r.phase == RESTORING
    assert r.level == 0.0 and r.cap_kw() is None and r.required_kw() == 0.0
    assert r.ceilings(t) == held
    # 10 stations over 300 s: one every 30 s, the first at +30, the last at +300
    times = sorted(t for _, t, _ in r.releases)
    assert times == pytest.approx([T0 + 20.5 + 30 * i for i in range(1, 11)])
    activation_id = r.activation_id
    released = 0
    while r.phase == RESTORING:
        due = r.next_deadline(t)
        assert due is not None
        t = due
        r.measure(50.0, t, t, Baseline())  # the source stays alive
        if r.advance(t, held):
            released += 1
            assert len(r.ceilings(t)) == 10 - released
    assert released == 10 and t == pytest.approx(T0 + 320.5)
    assert r.phase == IDLE and r.ended_id == activation_id and r.ended_at == t


def test_restoring_with_nothing_held_ends_at_once() -> None:
    r = FrequencyResponse(replace(FCR_D, min_hold_s=0.0, recovery_s=0.0), SILENCE)
    r.measure(49.5, T0, T0, Baseline())
    r.measure(50.0, T0 + 1, T0 + 1, Baseline())
    assert r.advance(T0 + 1, {}) is True and r.phase == IDLE


def test_reactivation_while_restoring_is_a_new_activation() -> None:
    p = replace(FCR_D, min_hold_s=0.0, recovery_s=2.0)
    r = FrequencyResponse(p, SILENCE)
    first = Baseline(500.0)
    r.measure(49.5, T0, T0, first)
    r.measure(50.0, T0 + 1, T0 + 1, first)
    r.advance(T0 + 3, {"a": 1.0, "b": 2.0})
    assert r.phase == RESTORING
    old = r.activation_id
    second = Baseline(420.0)
    assert r.measure(49.7, T0 + 4, T0 + 4, second) is True
    assert r.phase == ACTIVE and r.activation_id == "z1:1800000004.000" != old
    assert r.baseline_kw == 420.0 and second.calls == 1 and r.level == 0.5
    assert r.ended_id == old and r.ended_at == T0 + 4
    assert r.ceilings(T0 + 4) == {} and r.releases == []


def test_silence_disarms_at_once_without_restore() -> None:
    r = FrequencyResponse(FCR_D, SILENCE)
    r.measure(49.5, T0, T0, Baseline())
    assert r.next_deadline(T0) == T0 + SILENCE
    assert r.advance(T0 + SILENCE - 0.01, {"a": 3.0}) is False and r.phase == ACTIVE
    activation_id = r.activation_id
    assert r.advance(T0 + SILENCE, {"a": 3.0}) is True
    assert (r.phase, r.level, r.silenced, r.ceilings(T0 + SILENCE)) == (IDLE, 0.0, True, {})
    assert r.ended_id == activation_id and r.ended_at == T0 + SILENCE
    assert r.advance(T0 + 60, {}) is False and r.next_deadline(T0 + 60) is None
    # the next measurement re-arms (and starts a new activation if the frequency is low)
    assert r.measure(49.7, T0 + 61, T0 + 61, Baseline()) is True
    assert r.silenced is False and r.phase == ACTIVE and r.activation_id != activation_id


def test_silence_while_restoring_releases_everything() -> None:
    r = FrequencyResponse(replace(FCR_D, min_hold_s=0.0, recovery_s=0.0), SILENCE)
    r.measure(49.5, T0, T0, Baseline())
    r.measure(50.0, T0 + 1, T0 + 1, Baseline())
    r.advance(T0 + 1, {"a": 1.0, "b": 1.0})
    assert r.phase == RESTORING
    assert r.advance(T0 + 1 + SILENCE, {}) is True
    assert r.phase == IDLE and r.silenced and r.ceilings(T0 + 7) == {}


def test_step_product_holds_until_above_trigger_plus_deadband() -> None:
    r = FrequencyResponse(STEP_PRODUCT, SILENCE)
    assert r.measure(49.72, T0, T0, Baseline()) is False
    assert r.measure(49.70, T0 + 1, T0 + 1, Baseline()) is True and r.level == 1.0
    # 49.74 is above the trigger but inside its deadband (49.75): still full, no recovery
    for i in range(2, 30):
        r.measure(49.74, T0 + i, T0 + i, Baseline())
        r.advance(T0 + i, {"a": 11.0})
        assert (r.phase, r.level) == (ACTIVE, 1.0)
    assert r.zero_since is None
    # above 49.75: raw 0; falls one quantum a second, restores after 10 s of recovery
    for i in range(30, 41):
        r.measure(49.76, T0 + i, T0 + i, Baseline())
        r.advance(T0 + i, {"a": 11.0})
    assert r.phase == RESTORING and r.ceilings(T0 + 40) == {"a": 11.0}


def test_reprogram_keeps_the_activation_and_uses_the_new_curve() -> None:
    r = FrequencyResponse(FCR_D, SILENCE)
    r.measure(49.70, T0, T0, Baseline(300.0))
    activation_id, started = r.activation_id, r.started_at
    r.reprogram(replace(FCR_D, committed_kw=60.0, start_hz=50.0, full_hz=49.80))
    assert r.activation_id == activation_id and r.level == 0.5 and r.required_kw() == 30.0
    assert r.measure(49.70, T0 + 1, T0 + 1, Baseline(1.0)) is True  # new curve: 1.0
    assert (r.level, r.cap_kw(), r.started_at, r.baseline_kw) == (1.0, 240.0, started, 300.0)


def test_silence_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrequencyResponse(FCR, 0.0)
