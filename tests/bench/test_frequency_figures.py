"""The frequency phase's arithmetic, pure: which activation a command belongs to, the ramp a
10 mHz meter reports, and the figures of one activation from the commands seen."""

from __future__ import annotations

import itertools

import orjson
import pytest

from evgrid.bench.frequency import Activation, activation_start, command_head, program, ramp_hz
from evgrid.commands import command_json
from evgrid.core.allocator import ConnectorLimit
from evgrid.core.control import Command
from evgrid.models.frequency import FrequencyProgramRecord


def test_activation_start_from_the_signal_id() -> None:
    assert activation_start("freq:BZ007:1764876000.123") == 1764876000.123
    assert activation_start("SIM-1-1") is None
    assert activation_start("freq:BZ007:soon") is None


@pytest.mark.parametrize("action", ["SET", "CLEAR"])
def test_the_head_of_a_command_holds_its_fields(action: str) -> None:
    cmd = Command(
        station_id="B000042", zone_id="BZ042", action=action,
        target_power_kw=88.7 if action == "SET" else None, station_shed_kw=30.0,
        signal_id="freq:BZ042:1764876000.123", priority=1, dr_end_ts=1764876120.0,
        command_ts=1764876000.2,
        connectors=(ConnectorLimit(1, "CCS", 88.7, None),) if action == "SET" else (),
        profile_id=99, profile_mode="station", stack_level=1, seq=1, command_id="abc",
        connector_ids=(1,) if action == "CLEAR" else (),
    )
    value = command_json(cmd)
    whole = orjson.loads(value)
    head = command_head(value)
    assert "connectors" not in head and "ocpp" not in head
    assert head == {k: v for k, v in whole.items() if k in head}
    assert {"signal_id", "station_id", "zone_id", "action", "command_ts"} <= head.keys()


def test_ramp_in_10_mhz_steps() -> None:
    values = [ramp_hz(k / 10, 10.0) for k in range(0, 121)]
    assert values[0] == 49.9 and values[100] == 49.5 and values[-1] == 49.5
    assert all(a >= b for a, b in itertools.pairwise(values))
    # 49.90, 49.89, ... 49.50: 0.01 Hz is 2.5 % of the droop, so two steps make a quantum
    assert sorted(set(values)) == [round(49.5 + k / 100, 2) for k in range(41)]


def test_the_bench_program_is_possible() -> None:
    record = FrequencyProgramRecord.model_validate(program("BZ000", 100))
    assert record.committed_kw == 4800.0 and record.restore_spread_s == 1.0


def test_figures_of_one_activation() -> None:
    a = Activation(since=100.0, until=101.0, sent_ms=100_000)
    seen = [("S1", "Z1", "t1", 100_020, 100.030), ("S2", "Z1", "t1", 100_025, 100.031),
            ("S3", "Z2", "t1", 100_090, 100.120), ("S1", "Z1", "t2", 101_000, 101.010)]
    for station, zone, command_ts, ms, at in seen:
        a.sets[station] += 1
        a.decisions[zone, command_ts] += 1
        a.first_ms.setdefault(station, ms)
        a.first_seen.setdefault(station, at)
    a.cleared = {"S1", "S2"}
    f = a.figures()
    assert (f["first_worker_ms"], f["median_worker_ms"], f["last_worker_ms"]) == (20, 25, 90)
    assert (f["first_e2e_ms"], f["last_e2e_ms"]) == (30.0, 120.0)
    assert (f["commanded"], f["sets"], f["max_sets_per_station"]) == (3, 4, 2)
    assert f["first_decision_sets"] == 3  # Z1's t1 (2) and Z2's t1 (1); Z1's t2 is later
    assert f["cleared"] == 2
