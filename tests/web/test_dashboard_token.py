"""The dashboard behind the API token, with two workers, in a real headless Chromium: the page
asks for the token once, keeps it for the browser session (never in a URL), and either
worker's page shows every zone."""

from __future__ import annotations

import asyncio
import time

import pytest

from evgrid.timeutil import iso
from tests.integration.harness import WorkerProcess, free_port, isolated_settings, jdump, produce
from tests.web.browser import Browser

pytestmark = pytest.mark.integration

TOKEN = "s3cret-dashboard-token"
ZONES = [f"ZD{i}" for i in range(8)]
ZONE_IDS_JS = "Array.from(document.querySelectorAll('.zone')).map(e => e.id.slice(5)).sort()"


async def test_token_once_and_every_zone_on_either_worker(kafka_broker, unique_prefix,
                                                          tmp_path) -> None:
    base = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "d1",
                             partitions=4, api_token=TOKEN)
    other = base.model_copy(update={"data_dir": tmp_path / "d2",
                                    "web_port": free_port()})
    workers = [WorkerProcess(base, tmp_path / "w1.log").start(),
               WorkerProcess(other, tmp_path / "w2.log").start()]
    try:
        await asyncio.gather(*(w.wait_ready(90) for w in workers))
        t = base.topics
        stations = [(f"DS{i}", ZONES[i % len(ZONES)]) for i in range(16)]
        await produce(kafka_broker.bootstrap, t.station_zones, [
            (s.encode(), jdump({"station_id": s, "zone_id": z, "max_station_kw": 100.0,
                                "contract_max_kw": 100.0})) for s, z in stations])
        await produce(kafka_broker.bootstrap, t.meter_values, [
            (s.encode(), jdump({"station_id": s, "connector_id": 1, "session_id": "x",
                                "connector_type": "CCS", "power_kw": 20.0,
                                "event_ts": iso(time.time())})) for s, _ in stations])

        async def owned(w: WorkerProcess) -> set[str]:
            status, body = await w.get("/zones")
            return {z["zone_id"] for z in body["zones"]} if status == 200 else set()

        deadline = time.monotonic() + 60
        split: list[set[str]] = [set(), set()]
        while time.monotonic() < deadline:
            split = list(await asyncio.gather(*(owned(w) for w in workers)))
            if split[0] | split[1] == set(ZONES) and all(split):
                break
            await asyncio.sleep(0.5)
        assert split[0] | split[1] == set(ZONES) and all(split), split  # both own some

        async with Browser(tmp_path / "chromium") as browser:
            for w in workers:
                await browser.goto(f"{w.url}/")
                await browser.wait_for("!document.getElementById('token-form').hidden")
                assert await browser.js(ZONE_IDS_JS) == []  # nothing shown before the token
                await browser.js("document.getElementById('token').focus()")
                await browser.type_text(TOKEN)
                await browser.press_enter()
                got = await browser.wait_for(
                    f"(ids => ids.length === {len(ZONES)} && ids)({ZONE_IDS_JS})")
                assert got == sorted(ZONES)
                assert await browser.js("document.body.dataset.workers") == "2"
                assert await browser.js("document.getElementById('token-form').hidden")
                assert await browser.js("sessionStorage.getItem('evgrid.apiToken')") == TOKEN
                urls = await browser.js(
                    "[location.href, ...performance.getEntriesByType('resource')"
                    ".map(e => e.name)]")
                assert urls and not any(TOKEN in u for u in urls), urls
                # Asked once: a reload in the same session shows the zones straight away.
                await browser.send("Page.reload")
                await browser.wait_for(
                    f"document.getElementById('token-form').hidden && "
                    f"document.querySelectorAll('.zone').length === {len(ZONES)}")
            # A wrong token in the session is refused and asked for again.
            await browser.js("sessionStorage.setItem('evgrid.apiToken', 'wrong')")
            await browser.send("Page.reload")
            message = await browser.wait_for(
                "!document.getElementById('token-form').hidden && "
                "document.getElementById('token-message').textContent")
            assert "refused" in message
    finally:
        for w in workers:
            w.stop()
