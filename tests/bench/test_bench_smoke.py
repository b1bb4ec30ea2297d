"""The benchmark code runs end to end at tiny sizes and reports sane figures. It asserts that
the numbers exist and make sense, never how fast anything is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_smoke(kafka_broker, tmp_path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "evgrid", "bench", "--smoke", "--out", str(out)],
        env={**os.environ, "EVGRID_BROKER": kafka_broker.bootstrap},
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "| meter values/s, one worker |" in run.stdout
    files = sorted(out.glob("*.json"))
    assert len(files) == 1 and files[0].with_suffix(".png").stat().st_size > 5_000
    r = json.loads(files[0].read_text())
    t = r["throughput"]
    assert t["raw_rate"] > 0 and t["worker_rate"] > 0
    assert t["ratio"] == pytest.approx(t["worker_rate"] / t["raw_rate"])
    for mode in ("quiet", "under_load"):
        lat = r["dr_latency_ms"][mode]
        assert lat["events"] == r["sizes"]["latency_events"], lat
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    mem = r["memory"]
    assert mem["idle_rss_mb"] > 0 and all(v > 0 for v in mem.values())
    assert r["scaling"]["workers_1"] > 0 and r["scaling"]["workers_2"] > 0
    assert r["cores"] >= 1
