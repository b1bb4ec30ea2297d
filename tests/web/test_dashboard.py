"""The dashboard in a real headless Chromium: a zone's chart draws data; the screenshot is kept
as a test artifact (test-artifacts/dashboard.png)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from evgrid.timeutil import iso
from tests.integration.harness import WorkerProcess, isolated_settings, jdump, produce, wait_for

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900", "--virtual-time-budget=4000",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run `make system-deps` (apt-get install chromium)")
    return path


async def test_dashboard_draws_a_zone_chart(kafka_broker, unique_prefix, tmp_path) -> None:
    settings = isolated_settings(
        kafka_broker.bootstrap, unique_prefix, tmp_path / "data", history_step_s=0.5
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        t = settings.topics
        await produce(kafka_broker.bootstrap, t.station_zones, [
            (f"D{i}".encode(), jdump({"station_id": f"D{i}", "zone_id": "Z-dash",
                                      "max_station_kw": 150.0, "contract_max_kw": 150.0}))
            for i in range(5)])
        for step in range(6):
            await produce(kafka_broker.bootstrap, t.meter_values, [
                (f"D{i}".encode(), jdump({"station_id": f"D{i}", "connector_id": 1,
                                          "session_id": "s", "connector_type": "CCS",
                                          "power_kw": 40.0 + 5 * step,
                                          "event_ts": iso(time.time())}))
                for i in range(5)])
            await asyncio.sleep(0.5)
        # A short DR event, restored: its settlement report shows in the reports table.
        now = time.time()
        event = {"signal_id": "DR-dash", "zone_id": "Z-dash", "signal_type": "CURTAIL",
                 "target_reduction_kw": 50.0, "start_ts": iso(now - 1),
                 "end_ts": iso(now + 600), "priority": 2, "received_ts": iso(now)}
        await produce(kafka_broker.bootstrap, t.demand_response, [(b"Z-dash", jdump(event))])

        async def event_in(state: str) -> bool:
            _, view = await worker.get("/zones/Z-dash")
            return any(e["state"] == state for e in view.get("dr", {}).get("events", []))

        await wait_for(lambda: event_in("ACTIVE"), 30, "the event active")
        await produce(kafka_broker.bootstrap, t.demand_response, [(b"Z-dash", jdump(
            {**event, "signal_type": "RESTORE", "received_ts": iso(time.time())}))])

        async def reported() -> bool:
            _, data = await worker.get("/dashboard.json")
            return any(r["signal_id"] == "DR-dash" for r in data.get("reports", []))

        await wait_for(reported, 30, "the event's report on the dashboard")
        url = f"{worker.url}/"
        profile = tmp_path / "chromium-profile"
        dom = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=90, check=False,
        ).stdout
        assert 'data-ready="1"' in dom, dom[-2000:]
        assert 'id="zone-Z-dash"' in dom
        reports = dom[dom.index('id="reports"'):dom.index('id="alerts"')]
        assert "<td>DR-dash</td>" in reports, reports
        points = [int(n) for n in re.findall(r'data-points="(\d+)"', dom)]
        assert points and max(points) >= 3, points
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--screenshot={shot}", url],
            capture_output=True, timeout=90, check=True,
        )
        assert shot.stat().st_size > 10_000
    finally:
        worker.stop()
