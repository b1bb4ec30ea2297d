"""Event reports: a hand-computed case, restarts, and the identities hypothesis checks."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.control import ZoneController
from evgrid.core.types import Tunables
from evgrid.models import DRReport, dr_report_message

from .drsim import T0, SimZone, signal

STEPS = (0, 30, 300, 330, 360, 600)


def _run_hand_case(restart_at: float | None = None) -> tuple[SimZone, list[dict]]:
    """A 60 + 40 kW zone, CURTAIL 30 kW for 10 min (cap 70). Both comply at +30 s; B slips
    back to 40 kW at +300 s, is non-compliant at +330 s (grace 20 s) and A is cut to 30 kW,
    which it applies by +360 s."""
    z = SimZone({"A": 60.0, "B": 40.0})
    reports: list[dict] = []
    reports += z.send(signal("E", kw=30.0, end=T0 + 600), T0).reports
    for dt in STEPS[1:]:
        now = T0 + dt
        if dt == 300:
            z.disobey.add("B")
            z.loads["B"] = 40.0
        if restart_at is not None and dt == restart_at:
            state = orjson.loads(orjson.dumps(z.ctl.to_dict()))
            z.ctl = ZoneController.from_dict(state, z.t)
        reports += z.tick(now).reports
    return z, reports


def test_hand_computed_report_within_half_a_percent() -> None:
    z, reports = _run_hand_case()
    assert len(reports) == 1
    r = reports[0]
    # Zone load held between steps: 100 for 30 s, 70 for 270 s, 82 for 60 s, 70 for 240 s.
    drawn = (100 * 30 + 70 * 270 + 82 * 60 + 70 * 240) / 3600
    expected = {
        "baseline_kw": 100.0, "cap_kw": 70.0, "duration_s": 600.0,
        "baseline_energy_kwh": 100 * 600 / 3600, "drawn_energy_kwh": drawn,
        "delivered_kwh": 100 * 600 / 3600 - drawn, "target_kwh": 30 * 600 / 3600,
        "delivered_pct_of_target": 100 * (100 * 600 / 3600 - drawn) / (30 * 600 / 3600),
        "time_to_cap_s": 30.0, "peak_overshoot_kw": 12.0,
    }
    for name, value in expected.items():
        assert r[name] == pytest.approx(value, rel=0.005), name
    assert r["delivered_pct_of_target"] == pytest.approx(91.0, rel=0.005)
    assert (r["actual_start_ts"], r["actual_end_ts"], r["ended_by"]) == (T0, T0 + 600, "END")
    assert (r["planned_start_ts"], r["planned_end_ts"]) == (T0, T0 + 600)
    assert r["caps"] == [{"from_ts": T0, "cap_kw": 70.0, "signal_id": "E"}]
    a, b = r["stations"]
    assert a["station_id"] == "A" and b["station_id"] == "B"
    assert [t["target_kw"] for t in a["targets"]] == pytest.approx([42.0, 30.0])
    assert [t["from_ts"] for t in a["targets"]] == [T0, T0 + 330]
    assert a["measured_avg_kw"] == pytest.approx(
        (60 * 30 + 42 * 270 + 42 * 60 + 30 * 240) / 600, rel=0.005)
    assert a["average_target_kw"] == pytest.approx((42 * 330 + 30 * 270) / 600, rel=0.005)
    assert b["measured_avg_kw"] == pytest.approx((40 * 30 + 28 * 270 + 40 * 300) / 600,
                                                 rel=0.005)
    assert (a["seconds_noncompliant"], b["seconds_noncompliant"]) == (0.0, 270.0)
    assert b["seconds_uncontrollable"] == 0.0
    message = dr_report_message(r)
    assert isinstance(message, DRReport) and message.zone_id == "Z1"
    assert orjson.loads(message.model_dump_json())["actual_end_ts"].endswith("Z")
    # Nothing more after the end.
    assert not z.tick(T0 + 601).reports


@pytest.mark.parametrize("restart_at", [30, 300, 330, 600])
def test_restarted_controller_emits_the_same_single_report(restart_at: int) -> None:
    _, straight = _run_hand_case()
    _, restarted = _run_hand_case(restart_at)
    assert restarted == straight


def test_restore_reports_at_once_and_a_never_started_event_reports_zeros() -> None:
    z = SimZone({"A": 50.0})
    z.send(signal("E", kw=10.0), T0)
    d = z.send(signal("E", "RESTORE", received=T0 + 90), T0 + 90)
    assert [(r["signal_id"], r["ended_by"], r["duration_s"]) for r in d.reports] == [
        ("E", "RESTORE", 90.0)
    ]
    d = z.send(signal("F", kw=10.0, start=T0 + 500), T0 + 100)
    assert not d.reports
    d = z.send(signal("F", "RESTORE", received=T0 + 120), T0 + 120)
    (r,) = d.reports
    assert r["actual_start_ts"] is None and r["baseline_kw"] is None
    assert r["duration_s"] == r["drawn_energy_kwh"] == r["delivered_kwh"] == 0.0
    assert r["delivered_pct_of_target"] is None and r["stations"] == []
    dr_report_message(r)


def test_uncontrollable_seconds_counted() -> None:
    z = SimZone({"A": 50.0, "B": 50.0})
    d = z.send(signal("E", kw=20.0, end=T0 + 100), T0)
    a = next(c for c in d.commands if c.station_id == "A")
    z.ctl.on_outcome("A", a.command_id, "NotSupported", T0 + 10, z.rows(T0 + 10))
    reports = []
    for i in range(11, 101):
        reports += z.tick(T0 + i).reports
    (r,) = reports
    by_id = {s["station_id"]: s for s in r["stations"]}
    assert by_id["A"]["seconds_uncontrollable"] == pytest.approx(90.0)
    assert by_id["B"]["seconds_uncontrollable"] == 0.0


def _numbers(obj: object) -> list[float]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _numbers(v)]
    return [obj] if isinstance(obj, float) else []


@settings(max_examples=100, deadline=None)
@given(
    base=st.lists(st.floats(0, 120), min_size=1, max_size=4),
    steps=st.lists(
        st.tuples(st.floats(0, 50), st.lists(st.floats(0, 150), min_size=4, max_size=4)),
        max_size=12,
    ),
    pct=st.floats(0, 100),
    restore=st.booleans(),
)
def test_delivered_is_baseline_energy_minus_drawn_and_never_nan(
    base: list[float], steps: list, pct: float, restore: bool
) -> None:
    """Arbitrary piecewise-constant loads changing at the steps (zero-length gaps included):
    drawn energy is exactly Σ load × held time; delivered = baseline energy − drawn."""
    z = SimZone({f"S{i}": kw for i, kw in enumerate(base)}, Tunables(compliance_grace_s=5.0))
    z.disobey = set(z.loads)  # loads follow the script, not the commands
    now = T0
    reports = z.send(signal("E", pct=pct, end=T0 + 10_000), now).reports
    drawn, held = 0.0, sum(base)
    for gap, loads in steps:
        z.loads = {s: loads[i] for i, s in enumerate(z.loads)}
        drawn += held * gap / 3600
        now += gap
        reports += z.tick(now).reports
        held = sum(z.loads.values())
    if restore:
        reports += z.send(signal("E", "RESTORE", received=now + 1), now).reports
    else:
        reports += z.tick(T0 + 10_000).reports
        drawn += held * (T0 + 10_000 - now) / 3600
        now = T0 + 10_000
    (r,) = reports
    assert all(math.isfinite(x) for x in _numbers(r))
    duration = now - T0
    assert r["duration_s"] == pytest.approx(duration, abs=1e-6)
    assert r["baseline_energy_kwh"] == pytest.approx(sum(base) * duration / 3600, abs=1e-5)
    assert r["drawn_energy_kwh"] == pytest.approx(drawn, rel=1e-9, abs=1e-5)
    assert r["delivered_kwh"] == pytest.approx(
        r["baseline_energy_kwh"] - r["drawn_energy_kwh"], abs=1e-9)
    assert sum(s["energy_kwh"] for s in r["stations"]) == pytest.approx(
        r["drawn_energy_kwh"], abs=1e-5)
    assert r["target_kwh"] == pytest.approx(sum(base) * pct / 100 * duration / 3600,
                                            rel=1e-6, abs=1e-5)
    if duration == 0:
        assert r["delivered_pct_of_target"] is None
    dr_report_message(r)


def test_zero_length_event_and_a_window_that_passed_before_it_arrived() -> None:
    z = SimZone({"A": 50.0, "B": 30.0})
    z.send(signal("E", kw=10.0), T0)
    d = z.send(signal("E", "RESTORE", received=T0 + 1), T0)  # restored at its activation
    (r,) = d.reports
    assert r["actual_start_ts"] == r["actual_end_ts"] == T0 and r["duration_s"] == 0.0
    assert r["baseline_kw"] == 80.0 and r["baseline_energy_kwh"] == 0.0
    assert r["drawn_energy_kwh"] == r["delivered_kwh"] == r["target_kwh"] == 0.0
    assert r["delivered_pct_of_target"] is None
    assert all(s["measured_avg_kw"] == 0.0 for s in r["stations"])
    d = z.send(signal("late", kw=10.0, start=T0 - 100, end=T0 + 5), T0 + 10)
    (r,) = d.reports
    assert r["signal_id"] == "late" and r["actual_start_ts"] is None
    assert r["ended_by"] == "END" and r["duration_s"] == 0.0
    assert [s["state"] for s in d.statuses] == ["ENDED"] and not d.commands
