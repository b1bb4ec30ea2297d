"""`/events/{signal_id}`: one DR event as it stands, with its report once it ended.

A signal id does not say which zone (and so which worker) holds the event: the worker asked
looks among the zones it owns, then asks its peers (every worker Faust's router knows, with
`?local=1` so they do not ask on) and answers with the first that knows it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import faust

from evgrid.agents.runtime import Runtime
from evgrid.timeutil import iso


def local_event(rt: Runtime, signal_id: str, now: float) -> dict[str, Any] | None:
    for zone in rt.zones.in_partitions(rt.clock.owned_partitions()):
        report = next((r for r in reversed(zone.recent_reports)
                       if r["signal_id"] == signal_id), None)
        view = zone.controller.view(now)
        event = next((e for e in view["events"] if e["signal_id"] == signal_id), None)
        if event is None and report is None:
            continue
        return {"zone_id": zone.zone_id, "event": event, "report": report,
                "governing": view["governing_signal_id"] == signal_id, "as_of": iso(now)}
    return None


def peers(app: faust.App) -> list[str]:
    """Web URLs of the other workers of this app, from Faust's table routing metadata."""
    me = str(app.conf.canonical_url).rstrip("/")
    urls: set[str] = set()
    rt: Runtime = app.evgrid  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):  # no metadata before the first assignment
        urls = set(app.router.table_metadata(rt.tables.zone_control.name))
    return sorted(u.rstrip("/") for u in urls if u.rstrip("/") != me)


async def ask_peers(app: faust.App, path: str, headers: dict[str, str],
                    timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The first 200 answer among the peers, or None."""
    urls = peers(app)
    if not urls:
        return None
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:

        async def one(url: str) -> dict[str, Any] | None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(f"{url}{path}") as resp:
                    if resp.status == 200:
                        return await resp.json()
            return None

        for answer in await asyncio.gather(*(one(u) for u in urls)):
            if answer is not None:
                return answer
    return None
