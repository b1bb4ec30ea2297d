"""What a zone offers the grid when the frequency falls: the program, its checks and its curve.

A program is plain configuration (one per zone, from a compacted topic). It is either wholly
valid or rejected with every reason at once (`program_problems`): a program is never applied
in part. `activation` is the curve itself, a pure function of the frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

LINEAR, STEP = "linear", "step"
PRODUCTS = (LINEAR, STEP)
#: Frequencies a program may name (50 Hz and 60 Hz grids, with room for deep excursions).
MIN_HZ, MAX_HZ = 45.0, 65.0


@dataclass(frozen=True, slots=True)
class FrequencyProgram:
    """One zone's frequency-response offer. See docs/frequency.md for the fields."""

    zone_id: str
    area_id: str
    product: str  # LINEAR | STEP
    committed_kw: float  # > 0: the most the zone promises to shed
    start_hz: float | None = None  # LINEAR: activation starts below this
    full_hz: float | None = None  # LINEAR: full activation at/below this (< start_hz)
    trigger_hz: float | None = None  # STEP: full activation at/below this
    deadband_hz: float = 0.0  # >= 0, < (start_hz - full_hz) for LINEAR
    full_activation_s: float = 30.0  # product timing: 100 % within this
    half_activation_s: float | None = None  # 50 % within this; None -> full_activation_s / 6
    min_hold_s: float = 0.0  # an activation is held at least this long
    recovery_s: float = 0.0  # frequency back to normal this long before restore
    restore_spread_s: float = 300.0  # stations released spread over this

    @property
    def half_s(self) -> float:
        """The 50 % timing in force: `half_activation_s`, or a sixth of the full timing."""
        if self.half_activation_s is not None:
            return self.half_activation_s
        return self.full_activation_s / 6.0

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> FrequencyProgram:
        """Builds a program from plain data. Raises ValueError naming every field that is
        missing, unknown or of the wrong type (a misspelt field must not silently fall back to
        its default). It does not judge the values: that is `program_problems`."""
        if not isinstance(d, dict):
            raise ValueError("a program is an object")
        known = {f.name: f for f in fields(cls)}
        errors = [f"unknown field {k!r}" for k in d if k not in known]
        values: dict = {}
        for name in known:
            if name not in d:
                if name in _REQUIRED:
                    errors.append(f"{name} is missing")
                continue
            value = d[name]
            if name in _TEXT:
                if not isinstance(value, str):
                    errors.append(f"{name} must be a string")
                    continue
            elif value is None and name in _OPTIONAL:
                pass
            elif isinstance(value, bool) or not isinstance(value, int | float):
                errors.append(f"{name} must be a number")
                continue
            else:
                value = float(value)
            values[name] = value
        if errors:
            raise ValueError("; ".join(errors))
        return cls(**values)


_REQUIRED = ("zone_id", "area_id", "product", "committed_kw")
_TEXT = ("zone_id", "area_id", "product")
_OPTIONAL = ("start_hz", "full_hz", "trigger_hz", "half_activation_s")
_TIMES = ("full_activation_s", "half_activation_s", "min_hold_s", "recovery_s",
          "restore_spread_s")


def _finite(x: float | None) -> bool:
    return x is None or math.isfinite(x)


def program_problems(p: FrequencyProgram) -> list[str]:
    """Every reason the program is impossible ([] if fine). The caller dead-letters a program
    with these reasons joined; it never applies part of one."""
    out: list[str] = []
    if not p.zone_id:
        out.append("zone_id is empty")
    if not p.area_id:
        out.append("area_id is empty")
    if p.product not in PRODUCTS:
        out.append(f"product must be one of {', '.join(PRODUCTS)}, not {p.product!r}")
    numbers = {f.name: getattr(p, f.name) for f in fields(p)
               if f.name not in _TEXT}
    bad = [name for name, v in numbers.items() if not _finite(v)]
    out.extend(f"{name} is not a finite number" for name in bad)
    if "committed_kw" not in bad and not p.committed_kw > 0:
        out.append("committed_kw must be > 0")
    for name in ("start_hz", "full_hz", "trigger_hz"):
        v = numbers[name]
        if v is not None and name not in bad and not MIN_HZ <= v <= MAX_HZ:
            out.append(f"{name} must be within {MIN_HZ:g}..{MAX_HZ:g} Hz")
    if "deadband_hz" not in bad and p.deadband_hz < 0:
        out.append("deadband_hz must be >= 0")
    for name in _TIMES:
        v = numbers[name]
        if v is not None and name not in bad and v < 0:
            out.append(f"{name} must be >= 0")
    if not bad:
        out.extend(_timing_problems(p))
        if p.product == LINEAR:
            out.extend(_linear_problems(p))
        elif p.product == STEP:
            out.extend(_step_problems(p))
    return out


def _timing_problems(p: FrequencyProgram) -> list[str]:
    out = []
    if p.full_activation_s <= 0:
        out.append("full_activation_s must be > 0")
    if p.half_activation_s is not None and p.half_activation_s > p.full_activation_s:
        out.append("half_activation_s must be <= full_activation_s")
    if p.restore_spread_s <= 0:
        out.append("restore_spread_s must be > 0 (stations are never released all at once)")
    return out


def _linear_problems(p: FrequencyProgram) -> list[str]:
    out = []
    if p.start_hz is None or p.full_hz is None:
        out.append("a linear program needs start_hz and full_hz")
    elif p.full_hz >= p.start_hz:
        out.append("full_hz must be below start_hz")
    elif p.deadband_hz >= p.start_hz - p.full_hz:
        out.append("deadband_hz must be smaller than start_hz - full_hz")
    if p.trigger_hz is not None:
        out.append("trigger_hz is for step programs; a linear program has start_hz/full_hz")
    return out


def _step_problems(p: FrequencyProgram) -> list[str]:
    out = []
    if p.trigger_hz is None:
        out.append("a step program needs trigger_hz")
    elif p.trigger_hz + p.deadband_hz > MAX_HZ:
        out.append(f"trigger_hz + deadband_hz must be within {MAX_HZ:g} Hz")
    if p.start_hz is not None or p.full_hz is not None:
        out.append("start_hz/full_hz are for linear programs; a step program has trigger_hz")
    return out


def activation(p: FrequencyProgram, hz: float) -> float:
    """Raw activation in [0, 1] at frequency `hz` (the curve alone, no memory).

    LINEAR: 0 while hz > start_hz - deadband_hz, else (start_hz - hz) / (start_hz - full_hz)
    clamped to [0, 1]: the deadband only delays the start, the droop keeps its line.
    STEP: 1 at/below trigger_hz, else 0 (re-arming above trigger_hz + deadband_hz is
    FrequencyResponse's: the hysteresis needs memory). A frequency that is not a number gives 0.
    """
    if math.isnan(hz):
        return 0.0
    if p.product == STEP:
        return 1.0 if p.trigger_hz is not None and hz <= p.trigger_hz else 0.0
    if p.start_hz is None or p.full_hz is None or p.full_hz >= p.start_hz:
        return 0.0  # not a valid droop (program_problems names it): never activates
    if hz > p.start_hz - p.deadband_hz:
        return 0.0
    return min(1.0, max(0.0, (p.start_hz - hz) / (p.start_hz - p.full_hz)))
