"""The simulator's frequency trace and programs, pure: parsing, interpolation, the demo's dip,
the `--frequency-program` spec and the arguments that combine them."""

from __future__ import annotations

import argparse

import pytest

from evgrid.simulator.cli import add_parser, frequency_plan
from evgrid.simulator.fleet import Fleet
from evgrid.simulator.frequency import (
    DIP,
    ProgramSpec,
    frequency_at,
    parse_trace,
    zone_demand_kw,
)


def test_parse_trace_header_comments_blank_lines() -> None:
    text = "t_s,frequency_hz\n# a dip\n0,50.0\n\n 2.5 , 49.8\n10,49.95\n"
    assert parse_trace(text) == [(0.0, 50.0), (2.5, 49.8), (10.0, 49.95)]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "no rows"),
    ("0,50\n0,49.9\n", "does not increase"),
    ("0,50\n1,abc\n", "not numbers"),
    ("0,50,1\n", "want t_s,frequency_hz"),
    ("0,500\n", "outside 40–70 Hz"),
    ("-1,50\n", "≥ 0"),
    ("0,nan\n", "finite"),
    ("t_s,frequency_hz\n", "no rows"),
])
def test_parse_trace_refuses_bad_rows(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_trace(text)


def test_interpolation_linear_inside_held_outside() -> None:
    trace = [(1.0, 50.0), (5.0, 49.6), (65.0, 50.0)]
    assert frequency_at(trace, 0.0) == 50.0  # before: its first value
    assert frequency_at(trace, 1.0) == 50.0
    assert frequency_at(trace, 3.0) == pytest.approx(49.8)
    assert frequency_at(trace, 5.0) == pytest.approx(49.6)
    assert frequency_at(trace, 35.0) == pytest.approx(49.8)
    assert frequency_at(trace, 65.0) == 50.0
    assert frequency_at(trace, 1e6) == 50.0  # after: its last
    assert frequency_at([(0.0, 49.9)], 7.0) == 49.9


def test_the_demo_dip_falls_over_4_s_and_recovers_over_a_minute() -> None:
    nadir_t, nadir = min(DIP, key=lambda p: p[1])
    assert nadir == 49.6
    start = max(t for t, hz in DIP if t < nadir_t and hz == 50.0)
    end = min(t for t, hz in DIP if t > nadir_t and hz == 50.0)
    assert nadir_t - start == 4.0 and end - nadir_t == 60.0


def test_program_spec_share_of_the_zone_load() -> None:
    spec = ProgramSpec.parse("committed_pct=30,product=linear,start_hz=49.9,full_hz=49.5,"
                             "restore_spread_s=60,half_activation_s=5")
    record = spec.record("Z1", "A1", 812.0)
    assert record == {"zone_id": "Z1", "area_id": "A1", "product": "linear",
                      "committed_kw": 243.6, "start_hz": 49.9, "full_hz": 49.5,
                      "restore_spread_s": 60.0, "half_activation_s": 5.0}
    assert spec.record("Z2", "A1", 0.0)["committed_kw"] == 1.0  # an idle zone offers 1 kW
    fixed = ProgramSpec.parse("committed_kw=50,product=step,trigger_hz=49.7")
    assert fixed.record("Z9", "NO1", 1000.0)["committed_kw"] == 50.0


@pytest.mark.parametrize(("text", "problem"), [
    ("product=linear,start_hz=49.9,full_hz=49.5", "committed_pct or committed_kw"),
    ("committed_pct=30,committed_kw=5,start_hz=49.9,full_hz=49.5", "committed_pct or"),
    ("committed_pct=30,start_hz=49.9,full_hz=49.95", "impossible"),  # full above start
    ("committed_pct=30,start_hz=49.9,full_hz=49.5,dead_band_hz=0.1", "unknown field"),
    ("committed_pct=30,start_hz=x,full_hz=49.5", "not a number"),
    ("committed_pct=30,start_hz=49.9,zone_id=Z1", "unknown field"),
    ("committed_pct", "key=value"),
])
def test_program_spec_refuses_impossible_or_misspelt(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProgramSpec.parse(text)


def test_zone_demand_is_what_the_cars_would_draw() -> None:
    fleet = Fleet(40, 2, seed=3)
    demand = {z: zone_demand_kw(fleet, z) for z in fleet.zone_ids}
    assert all(v > 0 for v in demand.values())
    assert sum(demand.values()) == pytest.approx(sum(
        c.wanted_kw() for st in fleet.stations.values() for c in st.connectors))


def args_of(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["simulate", *argv])


def test_arguments_to_plan(tmp_path) -> None:
    assert frequency_plan(args_of()) is None
    plan = frequency_plan(args_of("--frequency-dip", "--frequency-at", "+90s", "--area", "SE3",
                                  "--frequency-program",
                                  "committed_pct=30,start_hz=49.9,full_hz=49.5"))
    assert plan is not None
    assert (plan.trace, plan.at_s, plan.area_id, plan.rate_hz) == (DIP, 90.0, "SE3", 10.0)
    assert plan.program is not None and plan.program.committed_pct == 30.0
    trace = tmp_path / "trace.csv"
    trace.write_text("t_s,frequency_hz\n0,50\n3,49.7\n")
    plan = frequency_plan(args_of("--frequency-trace", str(trace), "--frequency-rate", "25"))
    assert plan is not None and plan.trace == [(0.0, 50.0), (3.0, 49.7)]
    assert plan.rate_hz == 25.0 and plan.program is None
    # Programs alone: a steady nominal source keeps them armed.
    plan = frequency_plan(args_of("--frequency-program", "committed_kw=10,trigger_hz=49.7,"
                                  "product=step"))
    assert plan is not None and plan.trace == [(0.0, 50.0)]
    with pytest.raises(ValueError, match="choose one"):
        frequency_plan(args_of("--frequency-dip", "--frequency-trace", str(trace)))
    with pytest.raises(ValueError, match="rate"):
        frequency_plan(args_of("--frequency-dip", "--frequency-rate", "0"))
