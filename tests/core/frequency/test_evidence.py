"""The activation record: figures against a hand computation, verdicts, thinning, round trip."""

from __future__ import annotations

import random

import orjson
import pytest

from evgrid.core.frequency.evidence import MAX_SAMPLES, ActivationEvidence
from evgrid.core.frequency.program import LINEAR, FrequencyProgram

FCR_D = FrequencyProgram("z1", "SE3", LINEAR, 100.0, start_hz=49.90, full_hz=49.50,
                         full_activation_s=30.0, half_activation_s=5.0)
S = 1000.0  # start_ts

# (t, hz, required_kw, load_kw, reading_age_s); baseline 400 kW, so measured = 400 - load
DIP = [
    (1000.0, 49.70, 50.0, 400.0, 2.0),  # measured 0
    (1002.0, 49.60, 50.0, 380.0, 1.0),  # 20 < 0.5 * 50 = 25
    (1004.0, 49.50, 100.0, 360.0, 3.0),  # 40 < 0.5 * 100 = 50; required peaks (100) here
    (1005.0, 49.52, 100.0, 340.0, 1.0),  # 60 >= 50: time to 50 % = 1005 - 1000 = 5.0
    (1010.0, 49.55, 100.0, 310.0, 2.0),  # 90 < 0.95 * 100 = 95
    (1020.0, 49.60, 100.0, 304.0, 4.0),  # 96 >= 95: time to 100 % = 1020 - 1004 = 16.0
    (1030.0, 49.80, 80.0, 320.0, 2.0),  # 80
]


def run(samples: list[tuple], program: FrequencyProgram = FCR_D) -> ActivationEvidence:
    e = ActivationEvidence("z1:1000.000", program, S, 400.0)
    for t, hz, req, load, age in samples:
        e.observe(t, hz, req, load, age)
    return e


def test_a_dip_by_hand() -> None:
    rec = run(DIP).finish(1040.0)
    assert rec == {
        "activation_id": "z1:1000.000", "zone_id": "z1", "area_id": "SE3",
        "product": "linear", "committed_kw": 100.0, "baseline_kw": 400.0,
        "start_ts": 1000.0, "end_ts": 1040.0,
        "nadir_hz": 49.5, "nadir_ts": 1004.0,
        "peak_required_kw": 100.0, "delivered_kw": 96.0,  # the largest measured reduction
        "time_to_50_s": 5.0, "time_to_100_s": 16.0,
        "half_activation_s": 5.0, "full_activation_s": 30.0,
        "half_met": True, "full_met": True, "timing_met": True,  # 5.0 <= 5, 16.0 <= 30
        # ages sorted: 1 1 2 2 2 3 4 -> median 2, max 4
        "meter_resolution_s": 2.0, "max_reading_age_s": 4.0,
        "sample_count": 7,
        "samples": [[t, req, 400.0 - load] for t, _, req, load, _ in DIP],
    }


def test_late_half_misses_the_timing() -> None:
    # the 60 kW sample comes at 1006: time to 50 % = 6.0 > 5 -> half missed, timing missed
    late = [*DIP[:3], (1006.0, 49.52, 100.0, 340.0, 1.0), *DIP[4:]]
    rec = run(late).finish(1040.0)
    assert (rec["time_to_50_s"], rec["half_met"], rec["full_met"], rec["timing_met"]) \
        == (6.0, False, True, False)


def test_never_reached_is_none_and_missed() -> None:
    rec = run([(1000.0, 49.7, 50.0, 400.0, 1.0), (1040.0, 49.7, 50.0, 390.0, 1.0)]).finish(1050)
    assert (rec["time_to_50_s"], rec["time_to_100_s"]) == (None, None)
    assert (rec["half_met"], rec["full_met"], rec["timing_met"]) == (False, False, False)


def test_a_higher_peak_restarts_time_to_100() -> None:
    e = run([
        (1000.0, 49.7, 50.0, 400.0, 1.0),
        (1003.0, 49.7, 50.0, 352.0, 1.0),  # 48 >= 0.95 * 50 = 47.5: 3.0 s from 1000
    ])
    assert e.snapshot(1003.0)["time_to_100_s"] == 3.0
    e.observe(1010.0, 49.5, 100.0, 352.0, 1.0)  # new peak 100 at 1010: not yet (48 < 95)
    assert e.snapshot(1010.0)["time_to_100_s"] is None
    e.observe(1040.0, 49.5, 100.0, 305.0, 1.0)  # 95 >= 95: 1040 - 1010 = 30.0, <= 30 s
    rec = e.finish(1041.0)
    assert (rec["time_to_100_s"], rec["full_met"], rec["peak_required_kw"]) == (30.0, True, 100.0)
    assert rec["time_to_50_s"] == 3.0  # 48 >= 0.5 * 50 at 1003


def test_measured_never_negative_and_nadir_ignores_missing_hz() -> None:
    e = ActivationEvidence("z:1.000", FCR_D, 1.0, 100.0)
    e.observe(2.0, None, 10.0, 130.0, 0.5)  # load above baseline: 0 reduction, not -30
    e.observe(3.0, float("nan"), 10.0, 95.0, 0.5)
    rec = e.finish(4.0)
    assert rec["samples"] == [[2.0, 10.0, 0.0], [3.0, 10.0, 5.0]]
    assert rec["nadir_hz"] is None and rec["delivered_kw"] == 5.0


def test_snapshot_verdicts_are_pending_until_their_time() -> None:
    e = run(DIP[:3])  # nothing met yet
    snap = e.snapshot(1004.0)
    assert snap["end_ts"] is None and snap["half_met"] is None and snap["timing_met"] is None
    assert e.snapshot(1005.5)["half_met"] is False  # 5.5 s > 5 s and not reached
    e.observe(*DIP[3])
    assert e.snapshot(1005.0)["half_met"] is True and e.snapshot(1005.0)["full_met"] is None


def test_even_median_and_rounding() -> None:
    e = ActivationEvidence("z:1.000", FCR_D, 0.0, 100.0)
    for i, age in enumerate([0.2, 1.0, 0.6, 3.0]):  # sorted .2 .6 1 3 -> (0.6 + 1.0) / 2
        e.observe(float(i), 49.7, 33.33333, 90.0, age)
    rec = e.finish(10.0)
    assert rec["meter_resolution_s"] == 0.8 and rec["max_reading_age_s"] == 3.0
    assert rec["samples"][0] == [0.0, 33.333, 10.0]


def long_activation(n: int, changes: int, seed: int = 1) -> tuple[ActivationEvidence, list]:
    """n samples 0.2 s apart; required changes at `changes` random samples."""
    rng = random.Random(seed)
    change_at = set(rng.sample(range(1, n), changes))
    e = ActivationEvidence("z:0.000", FCR_D, 0.0, 1000.0)
    req, changed_times = 50.0, []
    for i in range(n):
        t = i * 0.2
        if i in change_at:
            req = 50.0 + 5.0 * rng.randint(1, 10) if req <= 50.0 else 50.0
            changed_times.append(round(t, 3))
        e.observe(t, 49.7, req, 1000.0 - rng.uniform(0, 40), 1.0)
    return e, changed_times


@pytest.mark.parametrize("n", [121, 600, 5000])
def test_thinning_keeps_every_change_of_required_and_the_ends(n: int) -> None:
    e, changed = long_activation(n, 40)
    rec = e.finish(n * 0.2)
    times = [t for t, _, _ in rec["samples"]]
    assert len(times) <= MAX_SAMPLES and times == sorted(times)
    assert times[0] == 0.0 and times[-1] == round((n - 1) * 0.2, 3)
    assert set(changed) <= set(times)
    assert len(e.samples) <= 4 * MAX_SAMPLES + 1  # bounded while it runs
    # the rest is spread over the activation, not bunched at one end
    if n >= 600:
        assert any(t < n * 0.2 / 4 for t in times[1:]) and any(t > n * 0.15 for t in times)


def test_thinning_with_more_changes_than_room_keeps_the_ends() -> None:
    e, _ = long_activation(3000, 400)
    times = [t for t, _, _ in e.finish(600.0)["samples"]]
    assert len(times) == MAX_SAMPLES and times[0] == 0.0 and times[-1] == round(2999 * 0.2, 3)


def test_round_trip_mid_activation_gives_the_same_record() -> None:
    a, _ = long_activation(700, 30)
    b = ActivationEvidence.from_dict(orjson.loads(orjson.dumps(a.to_dict())))
    assert b.to_dict() == a.to_dict()
    for t in (140.0, 141.0):
        a.observe(t, 49.4, 90.0, 905.0, 2.5)
        b.observe(t, 49.4, 90.0, 905.0, 2.5)
    assert a.finish(150.0) == b.finish(150.0)
    assert b.program == FCR_D
