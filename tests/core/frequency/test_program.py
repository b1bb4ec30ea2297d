"""Programs: every impossible one is named, the real products pass, the curve's invariants."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.frequency.program import (
    LINEAR,
    STEP,
    FrequencyProgram,
    activation,
    program_problems,
)

FCR_D = FrequencyProgram("z1", "SE3", LINEAR, 100.0, start_hz=49.90, full_hz=49.50,
                         deadband_hz=0.0, full_activation_s=30.0, half_activation_s=5.0)
FCR = FrequencyProgram("z2", "DE", LINEAR, 50.0, start_hz=50.0, full_hz=49.8,
                       deadband_hz=0.01, full_activation_s=30.0)
STEP_PRODUCT = FrequencyProgram("z3", "SE3", STEP, 80.0, trigger_hz=49.7, min_hold_s=5.0,
                                recovery_s=10.0, restore_spread_s=600.0)


@pytest.mark.parametrize("program", [FCR_D, FCR, STEP_PRODUCT])
def test_real_products_have_no_problems(program: FrequencyProgram) -> None:
    assert program_problems(program) == []


IMPOSSIBLE = [
    (replace(FCR_D, full_hz=49.90), "full_hz must be below start_hz"),
    (replace(FCR_D, full_hz=49.95), "full_hz must be below start_hz"),
    (replace(FCR_D, start_hz=None), "a linear program needs start_hz and full_hz"),
    (replace(FCR_D, full_hz=None), "a linear program needs start_hz and full_hz"),
    (replace(FCR_D, trigger_hz=49.7), "trigger_hz is for step programs"),
    (replace(STEP_PRODUCT, trigger_hz=None), "a step program needs trigger_hz"),
    (replace(STEP_PRODUCT, start_hz=49.9), "start_hz/full_hz are for linear programs"),
    (replace(STEP_PRODUCT, trigger_hz=64.9, deadband_hz=0.2), "trigger_hz + deadband_hz"),
    (replace(FCR_D, deadband_hz=0.40), "deadband_hz must be smaller than start_hz - full_hz"),
    (replace(FCR_D, deadband_hz=0.5), "deadband_hz must be smaller than start_hz - full_hz"),
    (replace(FCR_D, deadband_hz=-0.01), "deadband_hz must be >= 0"),
    (replace(FCR_D, committed_kw=0.0), "committed_kw must be > 0"),
    (replace(FCR_D, committed_kw=-5.0), "committed_kw must be > 0"),
    (replace(FCR_D, committed_kw=math.nan), "committed_kw is not a finite number"),
    (replace(FCR_D, start_hz=math.inf), "start_hz is not a finite number"),
    (replace(FCR_D, min_hold_s=-1.0), "min_hold_s must be >= 0"),
    (replace(FCR_D, recovery_s=-1.0), "recovery_s must be >= 0"),
    (replace(FCR_D, restore_spread_s=-1.0), "restore_spread_s must be >= 0"),
    (replace(FCR_D, restore_spread_s=0.0), "restore_spread_s must be > 0"),
    (replace(FCR_D, full_activation_s=0.0), "full_activation_s must be > 0"),
    (replace(FCR_D, full_activation_s=-3.0), "full_activation_s must be >= 0"),
    (replace(FCR_D, half_activation_s=-1.0), "half_activation_s must be >= 0"),
    (replace(FCR_D, half_activation_s=31.0), "half_activation_s must be <= full_activation_s"),
    (replace(FCR_D, start_hz=70.0, full_hz=66.0), "start_hz must be within 45..65 Hz"),
    (replace(FCR_D, full_hz=40.0), "full_hz must be within 45..65 Hz"),
    (replace(STEP_PRODUCT, trigger_hz=44.0), "trigger_hz must be within 45..65 Hz"),
    (replace(FCR_D, product="ramp"), "product must be one of linear, step"),
    (replace(FCR_D, zone_id=""), "zone_id is empty"),
    (replace(FCR_D, area_id=""), "area_id is empty"),
]


@pytest.mark.parametrize(("program", "reason"), IMPOSSIBLE)
def test_every_impossible_program_is_named(program: FrequencyProgram, reason: str) -> None:
    problems = program_problems(program)
    assert any(reason in p for p in problems), problems


def test_all_reasons_at_once() -> None:
    bad = replace(FCR_D, full_hz=49.95, committed_kw=0.0, min_hold_s=-2.0)
    problems = program_problems(bad)
    assert len(problems) == 3, problems


def test_dict_round_trip_and_strict_parsing() -> None:
    for p in (FCR_D, FCR, STEP_PRODUCT):
        assert FrequencyProgram.from_dict(p.to_dict()) == p
    d = {"zone_id": "z", "area_id": "a", "product": "step", "committed_kw": 10,
         "trigger_hz": 49}
    p = FrequencyProgram.from_dict(d)
    assert p.committed_kw == 10.0 and isinstance(p.committed_kw, float) and p.trigger_hz == 49.0
    with pytest.raises(ValueError, match="unknown field 'dead_band_hz'"):
        FrequencyProgram.from_dict({**d, "dead_band_hz": 0.01})
    with pytest.raises(ValueError, match="committed_kw is missing"):
        FrequencyProgram.from_dict({k: v for k, v in d.items() if k != "committed_kw"})
    with pytest.raises(ValueError, match="trigger_hz must be a number"):
        FrequencyProgram.from_dict({**d, "trigger_hz": "49.7"})
    with pytest.raises(ValueError, match="min_hold_s must be a number"):
        FrequencyProgram.from_dict({**d, "min_hold_s": True})
    with pytest.raises(ValueError, match="zone_id must be a string"):
        FrequencyProgram.from_dict({**d, "zone_id": 7})
    with pytest.raises(ValueError, match="a program is an object"):
        FrequencyProgram.from_dict([1, 2])  # type: ignore[arg-type]


def test_half_activation_defaults_to_a_sixth_of_full() -> None:
    assert FCR.half_s == 5.0
    assert FCR_D.half_s == 5.0
    assert replace(FCR_D, half_activation_s=None, full_activation_s=12.0).half_s == 2.0


def test_linear_curve_by_hand() -> None:
    # FCR-D: 49.90 -> 49.50 Hz, span 0.40 Hz.
    assert activation(FCR_D, 50.0) == 0.0
    assert activation(FCR_D, 49.90) == 0.0
    assert activation(FCR_D, 49.70) == pytest.approx(0.5)  # (49.90 - 49.70) / 0.40
    assert activation(FCR_D, 49.80) == pytest.approx(0.25)
    assert activation(FCR_D, 49.50) == 1.0
    assert activation(FCR_D, 49.0) == 1.0
    # Continental: 50.0 -> 49.8, deadband 10 mHz: nothing above 49.99, then the line itself.
    assert activation(FCR, 49.995) == 0.0
    assert activation(FCR, 49.99) == pytest.approx(0.05)  # (50.0 - 49.99) / 0.2
    assert activation(FCR, 49.95) == pytest.approx(0.25)
    assert activation(FCR, math.nan) == 0.0
    assert activation(FCR, -math.inf) == 1.0


def test_step_curve() -> None:
    assert activation(STEP_PRODUCT, 49.7) == 1.0
    assert activation(STEP_PRODUCT, 49.69) == 1.0
    assert activation(STEP_PRODUCT, 49.7001) == 0.0


@st.composite
def linear_programs(draw: st.DrawFn) -> FrequencyProgram:
    start = draw(st.floats(47.0, 62.0))
    span = draw(st.floats(0.01, 2.0))
    deadband = draw(st.floats(0.0, 0.99)) * span
    p = FrequencyProgram("z", "a", LINEAR, 10.0, start_hz=start, full_hz=start - span,
                         deadband_hz=deadband)
    assert program_problems(p) == []
    return p


@settings(max_examples=300, deadline=None)
@given(linear_programs(), st.lists(st.floats(44.0, 66.0), min_size=2, max_size=20))
def test_linear_activation_invariants(p: FrequencyProgram, freqs: list[float]) -> None:
    assert p.start_hz is not None and p.full_hz is not None
    ordered = sorted(freqs)
    values = [activation(p, hz) for hz in ordered]
    assert all(0.0 <= v <= 1.0 for v in values)
    # monotone non-increasing in hz
    assert all(a >= b for a, b in itertools.pairwise(values))
    for hz, v in zip(ordered, values, strict=True):
        if hz > p.start_hz - p.deadband_hz:
            assert v == 0.0
        if hz <= p.full_hz:
            assert v == 1.0
    assert activation(p, p.full_hz) == 1.0
    if p.deadband_hz > 0:
        assert activation(p, p.start_hz - p.deadband_hz / 2) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.floats(45.0, 64.0), st.floats(44.0, 66.0), st.floats(44.0, 66.0))
def test_step_activation_invariants(trigger: float, a: float, b: float) -> None:
    p = FrequencyProgram("z", "a", STEP, 10.0, trigger_hz=trigger)
    lo, hi = sorted((a, b))
    assert activation(p, lo) >= activation(p, hi)
    assert activation(p, lo) in (0.0, 1.0)
    assert activation(p, trigger) == 1.0
