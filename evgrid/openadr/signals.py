"""OpenADR 2.0b event signals -> how much a zone must give, interval by interval.

Pure: an event as openleadr parses it (plain dicts, aware datetimes) in, a `Plan` out, or
`Unsupported` with a reason the VEN sends back with its optOut. What each signal means in kW:

- `SIMPLE` `level` 0..3: a reduction of the zone's baseline by a configured percentage per level
  (0 = none); level 3 is a SHED (chargers may be suspended).
- `LOAD_DISPATCH` `setpoint`: an absolute limit on the zone's load (`cap_kw`).
- `LOAD_DISPATCH` `delta`: kW to take off the baseline (`target_reduction_kw`); a negative delta
  asks for more load, which a curtailment engine cannot give, so it is opted out.
- `LOAD_CONTROL` `x-loadControlCapacity`: the fraction of normal load allowed (0.7 = cut 30 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

Amount = dict[str, float]  # exactly one of target_reduction_kw | target_reduction_pct | cap_kw


class Unsupported(ValueError):
    """An event the VEN cannot carry out; `str(exc)` is the reason told to the VTN."""


@dataclass(frozen=True)
class Levels:
    """Reduction in percent of baseline for SIMPLE levels 1, 2, 3."""

    level1_pct: float = 25.0
    level2_pct: float = 50.0
    level3_pct: float = 100.0

    def pct(self, level: int) -> float:
        return (0.0, self.level1_pct, self.level2_pct, self.level3_pct)[level]


@dataclass(frozen=True)
class Step:
    """One interval of an event: from `start` (epoch s), this amount and signal type."""

    start: float
    end: float
    amount: Amount
    signal_type: str  # CURTAIL | SHED


@dataclass(frozen=True)
class Plan:
    """What one modification of one OpenADR event asks of every zone it targets."""

    event_id: str
    modification_number: int
    priority: int
    start: float
    end: float
    steps: tuple[Step, ...]

    @property
    def signal_id(self) -> str:
        return f"oadr:{self.event_id}"

    def step_at(self, now: float) -> Step:
        """The interval in force at `now`; before the event starts, its first interval."""
        current = self.steps[0]
        for step in self.steps:
            if step.start <= now:
                current = step
        return current


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unsupported(f"{what}: payload {value!r} is not a finite number")
    return float(value)


def _simple(value: float, levels: Levels, _unit: float) -> tuple[Amount, str]:
    if value not in (0, 1, 2, 3):
        raise Unsupported(f"SIMPLE level {value:g} is not one of 0, 1, 2, 3")
    level = int(value)
    return {"target_reduction_pct": levels.pct(level)}, "SHED" if level == 3 else "CURTAIL"


def _setpoint(value: float, _levels: Levels, unit_kw: float) -> tuple[Amount, str]:
    if value < 0:
        raise Unsupported(f"LOAD_DISPATCH setpoint {value:g} is negative")
    return {"cap_kw": value * unit_kw}, "CURTAIL"


def _delta(value: float, _levels: Levels, unit_kw: float) -> tuple[Amount, str]:
    if value < 0:
        raise Unsupported(f"LOAD_DISPATCH delta {value:g} asks for more load; evgrid only "
                          "curtails (a positive delta is the kW to shed)")
    return {"target_reduction_kw": value * unit_kw}, "CURTAIL"


def _capacity(value: float, _levels: Levels, _unit: float) -> tuple[Amount, str]:
    if not 0 <= value <= 1:
        raise Unsupported(f"LOAD_CONTROL x-loadControlCapacity {value:g} is not within 0..1")
    return {"target_reduction_pct": round((1.0 - value) * 100.0, 6)}, "CURTAIL"


Handler = Callable[[float, Levels, float], tuple[Amount, str]]

#: (signal_name, signal_type) -> handler, most specific first: with several supported signals
#: in one event (SIMPLE beside LOAD_DISPATCH is common), the first one listed here wins.
HANDLERS: dict[tuple[str, str], Handler] = {
    ("LOAD_DISPATCH", "setpoint"): _setpoint,
    ("LOAD_DISPATCH", "delta"): _delta,
    ("LOAD_CONTROL", "x-loadControlCapacity"): _capacity,
    ("SIMPLE", "level"): _simple,
}

_SCALE = {None: 1.0, "none": 1.0, "k": 1e3, "M": 1e6, "m": 1e-3}


def _unit_kw(signal: Mapping[str, Any]) -> float:
    """kW per payload unit: kW unless the signal's itemBase says W with a scale."""
    measurement = signal.get("measurement") or {}
    unit = measurement.get("unit")
    if unit is None:
        return 1.0
    if unit != "W" or measurement.get("scale") not in _SCALE:
        raise Unsupported(f"{signal.get('signal_name')}: unit {unit!r} "
                          f"(scale {measurement.get('scale')!r}) is not a power in W")
    return _SCALE[measurement.get("scale")] / 1000.0


def _epoch(dt: datetime) -> float:
    return dt.timestamp()


def priority_of(raw: object) -> int:
    """OpenADR priority (0 = none/highest, 1 highest, larger = lower) -> evgrid 1..3."""
    if not isinstance(raw, int) or isinstance(raw, bool) or raw <= 1:
        return 1
    return 2 if raw == 2 else 3


def plan_event(event: Mapping[str, Any], levels: Levels) -> Plan:
    """Translate one event; raise Unsupported with the reason to opt out with."""
    descriptor = event.get("event_descriptor") or {}
    event_id = descriptor.get("event_id")
    if not event_id:
        raise Unsupported("the event has no eventID")
    signals = event.get("event_signals") or []
    if isinstance(signals, Mapping):  # openleadr nests them this way in some messages
        signals = signals.get("event_signals") or []
    chosen = None
    for key in HANDLERS:
        chosen = next((s for s in signals
                       if (s.get("signal_name"), s.get("signal_type")) == key), None)
        if chosen is not None:
            break
    if chosen is None:
        names = ", ".join(f"{s.get('signal_name')}/{s.get('signal_type')}" for s in signals)
        raise Unsupported(f"no supported signal (got {names or 'none'}); evgrid understands "
                          + ", ".join(f"{n}/{t}" for n, t in HANDLERS))
    handler = HANDLERS[(chosen["signal_name"], chosen["signal_type"])]
    unit_kw = _unit_kw(chosen)
    steps: list[Step] = []
    for interval in sorted(chosen.get("intervals") or [], key=lambda i: i.get("uid", 0)):
        start, duration = interval.get("dtstart"), interval.get("duration")
        if not isinstance(start, datetime) or not isinstance(duration, timedelta):
            raise Unsupported("an interval has no dtstart or duration")
        if duration.total_seconds() <= 0:
            raise Unsupported("open-ended interval (duration 0): a DR event needs an end")
        value = _number(interval.get("signal_payload"), chosen["signal_name"])
        amount, signal_type = handler(value, levels, unit_kw)
        begin = _epoch(start)
        steps.append(Step(begin, begin + duration.total_seconds(), amount, signal_type))
    if not steps:
        raise Unsupported(f"{chosen['signal_name']} signal has no intervals")
    return Plan(
        event_id=str(event_id),
        modification_number=int(descriptor.get("modification_number") or 0),
        priority=priority_of(descriptor.get("priority")),
        start=min(s.start for s in steps),
        end=max(s.end for s in steps),
        steps=tuple(sorted(steps, key=lambda s: s.start)),
    )
