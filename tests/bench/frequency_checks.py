"""The frequency phase's figures at smoke size (checked by the bench smoke test): every
activation accounted for, the figures exist and hang together (how fast is never asserted)."""

from __future__ import annotations

from evgrid.bench.harness import SMOKE


def check_frequency(f: dict) -> None:
    stations = SMOKE.freq_zones * SMOKE.freq_per_zone
    assert f["stations"] == stations and f["offered_rate"] > 0
    assert f["activations"] + f["timeouts"] == SMOKE.freq_activations, f
    assert len(f["per_activation"]) == f["activations"]
    # The warm-ups ran, each complete, and stand apart from the timed activations.
    assert f["warmups"] == SMOKE.freq_warmups
    assert len(f["warmup_last_worker_ms"]) == SMOKE.freq_warmups, f
    assert len(f["warmup_beside_cpu_ms"]) == SMOKE.freq_warmups, f
    for a in f["per_activation"]:
        assert a["commanded"] == stations and a["cleared"] == stations, a
        # The fleet's first command comes no later than its last station's first one.
        assert 0 <= a["first_worker_ms"] <= a["median_worker_ms"] <= a["last_worker_ms"], a
        assert 0 < a["first_e2e_ms"] <= a["last_e2e_ms"], a
        assert stations <= a["first_decision_sets"] <= a["sets"], a
        assert 0 <= a["sets_after_release"] <= a["sets"] - a["first_decision_sets"], a
        assert a["max_sets_per_station"] >= 1
        # CPU in clock ticks: the worker's never negative; the machine's busy time, read a
        # moment apart from it, may fall a tick short of it
        assert a["worker_cpu_ms"] >= 0 and a["beside_cpu_ms"] >= -50, a
    if f["activations"]:
        for key in ("first_worker_ms", "last_worker_ms", "first_e2e_ms", "last_e2e_ms"):
            assert 0 <= f[key]["p50"] <= f[key]["p99"] <= f[key]["max"], (key, f[key])
        assert f["reaction_histogram_ms"]["count"] >= SMOKE.freq_zones  # a zone each time
    assert f["lag_ready"] >= 0 and f["lag_after_activations"] >= 0 and f["lag_end"] >= 0
    ramp = f["ramp"]
    assert ramp["quantum_steps"] == 20 and ramp["commanded"] == stations
    assert ramp["sets"] >= stations and ramp["released"], ramp
    assert ramp["sets_per_station_per_step"] == ramp["sets"] / stations / 20
