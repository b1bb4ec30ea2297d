"""The benchmark code runs end to end at tiny sizes, every phase at once, and reports
figures that make sense. It asserts that the numbers exist and hang together, never how fast
anything is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evgrid.bench.harness import SMOKE
from evgrid.bench.runner import PHASES
from tests.bench.frequency_checks import check_frequency

pytestmark = pytest.mark.integration


def run_bench(env: dict[str, str], out: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evgrid", "bench", "--smoke", "--parallel", "--out", out, *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=240, check=False,
    )


def ordered(figures: dict) -> bool:
    return 0 < figures["p50"] <= figures["p95"] <= figures["p99"] <= figures["max"]


def test_bench_smoke(kafka_broker, tmp_path) -> None:
    out = tmp_path / "results"
    run = run_bench({"EVGRID_BROKER": kafka_broker.bootstrap}, str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for name in PHASES:
        assert f"| {name} |" in run.stdout, name
    [result] = sorted(out.glob("*.json"))
    assert "| throughput | readings/s applied, one worker |" in (
        result.with_suffix(".md").read_text())
    r = json.loads(result.read_text())
    assert r["phases"] == list(PHASES) and set(r["phase_seconds"]) == set(PHASES)

    sq = r["sql"]
    assert sq["records_total"] > 0 and sq["rows_total"] >= sq["records_total"] / 2
    assert sq["zone_load"]["count"] > 0 and sq["dr_status"]["count"] > 0  # freshness observed
    assert all(0 < q["p50"] <= q["max"] for q in sq["queries"].values())

    t = r["throughput"]
    assert t["raw_rate"] > 0 and t["faust_noop_rate"] > 0 and t["worker_rate"] > 0
    assert t["ratio"] == pytest.approx(t["worker_rate"] / t["raw_rate"])
    assert t["ratio_faust_noop"] == pytest.approx(t["worker_rate"] / t["faust_noop_rate"])

    lat = r["latency"]
    assert lat["worker_applies_rate"] > 0
    for name in ("quiet", "loaded", "saturated"):
        c = lat[name]
        # Every event is accounted for: completed, or timed out (how fast is not asserted).
        assert c["events"] + c["timeouts"] == SMOKE.latency_events, (name, c)
        samples = c["end_to_end_samples_ms"]
        assert len(samples) == c["events"]
        assert c["over_1s"] == c["timeouts"] + sum(v > 1000 for v in samples)
        if samples:
            assert ordered(c["end_to_end_ms"]) and max(samples) == c["end_to_end_ms"]["max"]
            side = c["worker_side_ms"]
            assert side["count"] >= c["events"], (name, c)  # each completed event observed
            tops = [side[k] for k in ("p50", "p95", "p99", "max_le_ms")]
            finite = [v for v in tops if v is not None]  # None: beyond the last bucket
            assert finite == sorted(finite) and tops[: len(finite)] == finite, (name, side)
        assert c["lag_start"] >= 0 and c["lag_end"] >= 0
    # "Quiet" only keeps the fleet alive (each connector once a minute).
    assert 0 < lat["quiet"]["offered_rate"] < lat["loaded"]["offered_rate"]
    assert lat["loaded"]["offered_rate"] > 0 and lat["saturated"]["offered_rate"] > 0

    mem = r["memory"]
    assert mem["idle_rss_mb"] > 0
    assert [p["connectors"] for p in mem["points"]] == list(SMOKE.memory_connectors)
    for point in mem["points"]:
        assert point["complete"] == (point["readings_taken"] >= point["connectors"]), point
        assert point["readings_taken"] > 0 and point["rss_mb"] > 0
        assert point["steady_rss_mb"] > 0  # read again one checkpoint later

    rec = r["recovery"]
    assert rec["ready_s"] > 0 and rec["first_applied_s"] > 0, rec
    assert rec.get("caught_up_s", rec["first_applied_s"]) >= rec["first_applied_s"], rec
    assert rec["offered_rate"] > 0 and rec["lag_before_kill"] >= 0

    sc = r["scaling"]
    assert sc["workers_1"] > 0 and sc["workers_2"] > 0
    assert sc["speedup"] == pytest.approx(sc["workers_2"] / sc["workers_1"])
    check_frequency(r["frequency"])
    assert r["cores"] >= 1 and len(r["load_average_start"]) == 3
