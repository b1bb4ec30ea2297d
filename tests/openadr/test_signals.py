from __future__ import annotations

import pytest

from evgrid.openadr.signals import Levels, Unsupported, plan_event, priority_of
from tests.openadr.events import T0, event

LEVELS = Levels(25, 50, 100)


@pytest.mark.parametrize("name, kind, payload, measurement, amount, signal_type", [
    ("SIMPLE", "level", 0, None, {"target_reduction_pct": 0.0}, "CURTAIL"),
    ("SIMPLE", "level", 1, None, {"target_reduction_pct": 25.0}, "CURTAIL"),
    ("SIMPLE", "level", 2, None, {"target_reduction_pct": 50.0}, "CURTAIL"),
    ("SIMPLE", "level", 3, None, {"target_reduction_pct": 100.0}, "SHED"),
    ("LOAD_DISPATCH", "setpoint", 120, None, {"cap_kw": 120.0}, "CURTAIL"),
    ("LOAD_DISPATCH", "setpoint", 90_000, {"unit": "W", "scale": "none"}, {"cap_kw": 90.0},
     "CURTAIL"),
    ("LOAD_DISPATCH", "setpoint", 0.2, {"unit": "W", "scale": "M"}, {"cap_kw": 200.0}, "CURTAIL"),
    ("LOAD_DISPATCH", "delta", 40, None, {"target_reduction_kw": 40.0}, "CURTAIL"),
    ("LOAD_CONTROL", "x-loadControlCapacity", 0.7, None, {"target_reduction_pct": 30.0},
     "CURTAIL"),
])
def test_each_signal_in_kw(name: str, kind: str, payload: float, measurement: dict | None,
                           amount: dict, signal_type: str) -> None:
    plan = plan_event(event(name=name, kind=kind, payloads=(payload,),
                            measurement=measurement), LEVELS)
    step = plan.step_at(T0.timestamp())
    assert step.amount == pytest.approx(amount)
    assert step.signal_type == signal_type
    assert plan.signal_id == "oadr:e1"


@pytest.mark.parametrize("name, kind, payload, words", [
    ("ELECTRICITY_PRICE", "price", 0.3, "no supported signal"),
    ("x-custom", "level", 1, "no supported signal"),
    ("SIMPLE", "level", 4, "not one of 0, 1, 2, 3"),
    ("LOAD_DISPATCH", "delta", -5, "more load"),
    ("LOAD_DISPATCH", "setpoint", -5, "negative"),
    ("LOAD_CONTROL", "x-loadControlCapacity", 1.5, "within 0..1"),
    ("LOAD_DISPATCH", "setpoint", float("nan"), "not a finite number"),
])
def test_unsupported_signals_give_a_reason(name: str, kind: str, payload: float,
                                           words: str) -> None:
    with pytest.raises(Unsupported, match=words):
        plan_event(event(name=name, kind=kind, payloads=(payload,)), LEVELS)


def test_a_non_power_unit_is_refused() -> None:
    with pytest.raises(Unsupported, match="not a power"):
        plan_event(event(name="LOAD_DISPATCH", kind="setpoint", payloads=(5,),
                         measurement={"unit": "A", "scale": "none"}), LEVELS)


def test_intervals_are_the_schedule_and_the_last_end_is_the_end() -> None:
    plan = plan_event(event(payloads=(1, 2, 0), minutes=10), LEVELS)
    t0 = T0.timestamp()
    assert (plan.start, plan.end) == (t0, t0 + 1800)
    assert plan.step_at(t0 - 60).amount == {"target_reduction_pct": 25.0}  # before the start
    assert plan.step_at(t0 + 601).amount == {"target_reduction_pct": 50.0}
    assert plan.step_at(t0 + 1201).amount == {"target_reduction_pct": 0.0}


def test_the_most_specific_signal_wins_over_simple() -> None:
    ev = event(payloads=(1,))
    ev["event_signals"].append({**ev["event_signals"][0], "signal_name": "LOAD_DISPATCH",
                                "signal_type": "setpoint"})
    assert plan_event(ev, LEVELS).steps[0].amount == {"cap_kw": 1.0}


def test_an_open_ended_interval_is_refused() -> None:
    ev = event()
    ev["event_signals"][0]["intervals"][0]["duration"] *= 0
    with pytest.raises(Unsupported, match="open-ended"):
        plan_event(ev, LEVELS)


@pytest.mark.parametrize("raw, expected", [(0, 1), (1, 1), (2, 2), (3, 3), (9, 3), (None, 1)])
def test_priority(raw: object, expected: int) -> None:
    assert priority_of(raw) == expected
