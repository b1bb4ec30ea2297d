"""`/events/{signal_id}`: one DR event as it stands, with its report once it ended.

A signal id does not say which zone (and so which worker) holds the event: the worker asked
looks among the zones it owns, then asks its peers (`evgrid.web.fleet`, with `?local=1` so
they do not ask on) and answers with the first that knows it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from evgrid.runtime import Runtime
from evgrid.timeutil import iso
from evgrid.web.fleet import peer_fetcher, peer_urls


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


async def ask_peers(app: faust.App, signal_id: str,
                    authorization: str | None) -> dict[str, Any] | None:
    """The first peer that knows the event, or None."""
    urls = peer_urls(app)
    fetch = peer_fetcher(app, authorization, f"/events/{signal_id}", {"local": "1"})
    answers = await asyncio.gather(*(fetch(url) for url in urls), return_exceptions=True)
    return next((a for a in answers if isinstance(a, dict)), None)
