"""HTTP views on the worker's web port: health, Prometheus metrics, and JSON views of zones,
stations and DR events — each answered by whichever worker owns the key (Faust table routing),
so a load balancer can send any request to any worker."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View, Web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from evgrid import codec
from evgrid.agents.runtime import Runtime
from evgrid.core.types import StationConfig
from evgrid.timeutil import iso
from evgrid.web.fleet import fleet_view, peer_fetcher, peer_urls
from evgrid.web.health import health_status

Handler = Callable[..., Awaitable[Response]]


def zone_view(rt: Runtime, zone_id: str, now: float) -> dict[str, Any] | None:
    zone = rt.zones.zones.get(zone_id)
    if zone is None:
        if rt.tables.zone_control.get(zone_id.encode()) is None:
            return None
        zone = rt.zones.load_zone(zone_id)
    stale = rt.settings.stale_after_s
    summary = zone.load.summary(now, stale)
    stations = [
        {
            "station_id": sid,
            "load_kw": round(row.load_kw(now, stale), 3),
            "max_station_kw": row.config.max_station_kw,
            "contract_max_kw": row.config.contract_max_kw,
        }
        for sid, row in sorted(zone.load.stations.items())
    ]
    return {
        **summary,
        "dr": zone.controller.view(now),
        "overload": zone.load.alarm.active,
        "station_list": stations,
        "as_of": iso(now),
    }


def station_view(rt: Runtime, station_id: str, now: float) -> dict[str, Any] | None:
    from evgrid.agents.station import StationEntry

    raw = rt.tables.station_state.get(station_id.encode())
    cfg_raw = rt.tables.station_config.get(station_id.encode())
    if raw is None and cfg_raw is None:
        return None
    config = StationConfig.from_dict(codec.loads(cfg_raw)) if cfg_raw else None
    entry = StationEntry.from_bytes(raw) if raw else None
    stale = rt.settings.stale_after_s
    connectors = []
    if entry is not None:
        for c in sorted(entry.state.connectors.values(), key=lambda c: c.connector_id):
            connectors.append(
                {
                    **c.to_dict(),
                    "event_ts": iso(c.event_ts),
                    "stale": now - c.event_ts > stale,
                }
            )
    windows = entry.state.windows.snapshot() if entry is not None else []
    return {
        "station_id": station_id,
        "zone_id": config.zone_id if config else None,
        "config": config.to_dict() if config else None,
        "load_kw": round(entry.state.load_kw(now, stale), 3) if entry else 0.0,
        "contract_overload": entry.alarm.active if entry else False,
        "connectors": connectors,
        "windows": [
            {**w, "window_start": iso(w["window_start"]), "window_end": iso(w["window_end"])}
            for w in windows
        ],
        "as_of": iso(now),
    }


DASHBOARD = (Path(__file__).parent / "dashboard.html").read_bytes()


def dashboard_data(rt: Runtime, now: float, worker: str) -> dict[str, Any]:
    """This worker's zones with 15 minutes of history, their DR events, recent alerts."""
    owned = rt.clock.owned_partitions()
    zones, events = [], []
    stale = rt.settings.stale_after_s
    for zone_id in sorted(rt.zones.zones):
        if not rt.clock.owns(zone_id, owned):
            continue
        zone = rt.zones.zones[zone_id]
        summary = zone.load.summary(now, stale)
        view = zone.controller.view(now)
        zones.append(
            {
                "zone_id": zone_id,
                "load_kw": summary["zone_total_power_kw"],
                "capacity_kw": summary["zone_capacity_kw"],
                "cap_kw": view["cap_kw"],
                "history": [list(p) for p in rt.clock.history.get(zone_id, ())],
            }
        )
        events += [{**e, "zone_id": zone_id} for e in view["events"] if e["state"] != "ENDED"]
    return {
        "now": now,
        "worker": worker,
        "zones": zones,
        "events": events,
        "alerts": list(rt.publisher.recent_alerts),
    }


def register_views(app: faust.App, rt: Runtime) -> None:
    token = rt.settings.api_token

    def authorized(request: Request) -> bool:
        if not token:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def guarded(handler: Handler) -> Handler:
        async def wrapper(view: View, request: Request, **kw: Any) -> Response:
            if not authorized(request):
                return view.json({"error": "missing or wrong bearer token"}, status=401)
            return await handler(view, request, **kw)

        return wrapper

    @app.page("/")
    async def dashboard(web: Web, request: Request) -> Response:
        return web.bytes(DASHBOARD, content_type="text/html")

    @app.page("/dashboard.json")
    @guarded
    async def dashboard_json(web: Web, request: Request) -> Response:
        local = dashboard_data(rt, time.time(), str(app.conf.canonical_url))
        if request.query.get("scope") == "local":  # a peer asking for this worker's part
            return web.json(local)
        fetch = peer_fetcher(app, request.headers.get("Authorization"))
        return web.json(await fleet_view(local, peer_urls(app), fetch))

    @app.page("/health")
    async def health(web: Web, request: Request) -> Response:
        status, body = health_status(app, rt.settings.app_id)
        return web.json(body, status=status)

    @app.page("/metrics")
    async def prometheus(web: Web, request: Request) -> Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/zones")
    @guarded
    async def zones(web: Web, request: Request) -> Response:
        now = time.time()
        owned = rt.clock.owned_partitions()
        found = [
            zone_view(rt, zone_id, now)
            for zone_id in sorted(rt.zones.zones)
            if rt.clock.owns(zone_id, owned)
        ]
        worker = str(app.conf.canonical_url)
        return web.json({"zones": [z for z in found if z], "worker": worker})

    @app.page("/zones/{zone_id}")
    @app.table_route(table=rt.tables.zone_control, match_info="zone_id")
    @guarded
    async def zone(web: Web, request: Request, zone_id: str) -> Response:
        found = zone_view(rt, zone_id, time.time())
        if found is None:
            return web.json({"error": f"unknown zone {zone_id!r}"}, status=404)
        return web.json(found)

    @app.page("/stations/{station_id}")
    @app.table_route(table=rt.tables.station_state, match_info="station_id")
    @guarded
    async def station(web: Web, request: Request, station_id: str) -> Response:
        found = station_view(rt, station_id, time.time())
        if found is None:
            return web.json({"error": f"unknown station {station_id!r}"}, status=404)
        return web.json(found)
