"""The dashboard's view of the whole fleet: a worker answers for its own zones and asks every
other worker for theirs, so the page shows every zone whichever worker serves it.

The workers are the hosts of Faust's last assignment (its changelog distribution: every member
with active table partitions, by canonical URL — the same map the keyed views route by). A
peer that does not answer in time is listed with its error; the page shows the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust

PEER_TIMEOUT_S = 2.0
MAX_ALERTS = 50
MAX_REPORTS = 10

Fetch = Callable[[str], Awaitable[dict[str, Any]]]


def peer_urls(app: faust.App) -> list[str]:
    """Every other worker of the group, by the URL Faust routes keyed requests to."""
    me = str(app.conf.canonical_url).rstrip("/")
    hosts = getattr(app.assignor, "changelog_distribution", None) or {}
    return sorted({str(url).rstrip("/") for url in hosts} - {me})


async def fleet_view(local: dict[str, Any], peers: list[str], fetch: Fetch) -> dict[str, Any]:
    """This worker's dashboard data merged with each peer's local part."""
    answers = await asyncio.gather(*(fetch(url) for url in peers), return_exceptions=True)
    workers = [{"url": local["worker"], "zones": len(local["zones"]), "error": None}]
    zones = {z["zone_id"]: z for z in local["zones"]}
    events, alerts = list(local["events"]), list(local["alerts"])
    reports = list(local.get("reports", ()))
    for url, answer in zip(peers, answers, strict=True):
        if isinstance(answer, BaseException):
            workers.append({"url": url, "zones": 0, "error": str(answer) or type(answer).__name__})
            continue
        workers.append({"url": url, "zones": len(answer["zones"]), "error": None})
        for zone in answer["zones"]:
            zones.setdefault(zone["zone_id"], zone)  # a zone moving mid-request: first wins
        events += answer["events"]
        alerts += answer["alerts"]
        reports += answer.get("reports", ())
    alerts.sort(key=lambda a: a.get("at", 0), reverse=True)
    reports.sort(key=lambda r: r["ended"], reverse=True)
    return {**local, "zones": [zones[z] for z in sorted(zones)], "events": events,
            "alerts": alerts[:MAX_ALERTS], "reports": reports[:MAX_REPORTS],
            "workers": workers}


def peer_fetcher(app: faust.App, authorization: str | None, path: str = "/dashboard.json",
                 params: dict[str, str] | None = None) -> Fetch:
    """GET a peer's own answer (by default its part of the dashboard), with the caller's
    bearer token; `params` tell it not to ask its own peers in turn."""
    import aiohttp

    headers = {"Authorization": authorization} if authorization else {}
    query = {"scope": "local"} if params is None else params

    async def fetch(url: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
        async with app.http_client.get(f"{url}{path}", params=query,
                                       headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            return await resp.json()

    return fetch
