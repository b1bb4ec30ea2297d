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

from evgrid.core.control.frequency import flexibility, governing_cap
from evgrid.core.control.sites import SiteControl
from evgrid.runtime import Runtime
from evgrid.state.zones import ZoneEntry
from evgrid.timeutil import iso
from evgrid.web.events import ask_peers, local_event
from evgrid.web.fleet import fleet_view, peer_fetcher, peer_urls
from evgrid.web.health import health_status

Handler = Callable[..., Awaitable[Response]]


def zone_view(rt: Runtime, zone_id: str, now: float) -> dict[str, Any] | None:
    zone = rt.zones.find(zone_id, now)
    if zone is None:
        return None
    stale = rt.settings.stale_after_s
    summary = zone.load.summary(now, stale)
    stations = [
        {
            "station_id": station_id,
            "load_kw": round(row.load_kw(now, stale), 3),
            "max_station_kw": row.config.max_station_kw,
            "contract_max_kw": row.config.contract_max_kw,
            "last_outcome": zone.last_outcomes.get(station_id),
        }
        for station_id, row in sorted(zone.load.stations.items())
    ]
    return {
        **summary,
        "dr": (view := zone.controller.view(now)),
        # The frequency program, the activation under way and its evidence so far, and the
        # last activation records.
        "frequency": view["frequency"],
        "frequency_activations": list(zone.recent_activations),
        "sites": list(zone.controller.site_view(zone.load.stations, now).values()),
        "overload": zone.load.alarm.active,
        "warm": zone.warm(now),
        # How complete the picture is: its members, those with a live reading, and when
        # the newest reading behind it arrived.
        "members": summary["stations"],
        "members_reporting": summary["stations_reporting"],
        "loads_at": None if zone.loads_at is None else iso(zone.loads_at),
        "load_age_s": None if zone.loads_at is None else round(zone.load_age_s(now) or 0.0, 3),
        "station_list": stations,
        "as_of": iso(now),
    }


def site_view(rt: Runtime, site_id: str, now: float) -> dict[str, Any] | None:
    """A site as its zone's owner sees it (None: unknown here)."""
    site = rt.sites.sites.get(site_id)
    if site is None:
        return None
    zone = rt.zones.find(site.zone_id, now)
    if zone is None:  # no station of its zone yet: the site as configured
        found = SiteControl(rt.settings.tunables()).view({site_id: site}, {}, {}, now)[site_id]
    else:
        found = zone.controller.site_view(zone.load.stations, now)[site_id]
    since = found["limited_since"]
    return {**found, "limited_since": None if since is None else iso(since), "as_of": iso(now)}


def station_view(rt: Runtime, station_id: str, now: float) -> dict[str, Any] | None:
    entry = rt.stations.get(station_id)
    if entry is None:
        return None
    config = entry.config
    stale = rt.settings.stale_after_s
    connectors = [
        {**c.to_dict(), "event_ts": iso(c.event_ts), "arrival_ts": iso(c.arrival_ts),
         "stale": not c.is_live(now, stale)}
        for c in sorted(entry.state.connectors.values(), key=lambda c: c.connector_id)
    ]
    return {
        "station_id": station_id,
        "zone_id": config.zone_id if config else None,
        "config": config.to_dict() if config else None,
        "load_kw": round(entry.state.load_kw(now, stale), 3),
        "contract_overload": entry.alarm.active,
        **entry.state.clock_summary(),
        "connectors": connectors,
        "windows": [
            {**w, "window_start": iso(w["window_start"]), "window_end": iso(w["window_end"])}
            for w in entry.state.windows.snapshot()
        ],
        "as_of": iso(now),
    }


DASHBOARD = (Path(__file__).parent / "dashboard.html").read_bytes()


def dashboard_data(rt: Runtime, now: float, worker: str) -> dict[str, Any]:
    """This worker's zones with 15 minutes of history, their DR events, recent alerts."""
    owned = rt.clock.owned_partitions()
    zones, events, frequency = [], [], []
    stale = rt.settings.stale_after_s
    for zone in sorted(rt.zones.in_partitions(owned), key=lambda z: z.zone_id):
        zone_id = zone.zone_id
        summary = zone.load.summary(now, stale)
        view = zone.controller.view(now)
        zones.append(
            {
                "zone_id": zone_id,
                "load_kw": summary["zone_total_power_kw"],
                "capacity_kw": summary["zone_capacity_kw"],
                "cap_kw": governing_cap(view),
                "history": [list(p) for p in rt.clock.history.get(zone_id, ())],
                # Each activated event's baseline from activation to its end (null while it
                # runs): the reference line the chart measures the curtailment against.
                "baselines": [[e["activated_at"], e["ended_at"], e["baseline_kw"]]
                              for e in view["events"] if e["baseline_kw"] is not None],
                # Each station's last command outcome from the gateway (station -> status).
                "outcomes": {station_id: o["status"]
                             for station_id, o in sorted(zone.last_outcomes.items())},
                # Each site: load, limit, headroom and the stations it limits now.
                "sites": [
                    {k: s[k] for k in ("site_id", "load_kw", "limit_kw", "headroom_kw",
                                       "utilization_pct", "limited", "stations_limited")}
                    for s in zone.controller.site_view(zone.load.stations, now).values()
                ],
            }
        )
        events += [{**e, "zone_id": zone_id} for e in view["events"] if e["state"] != "ENDED"]
        if view["frequency"] is not None:
            frequency.append(frequency_row(zone, view["frequency"], now))
    return {
        "now": now,
        "worker": worker,
        "zones": zones,
        "events": events,
        "reports": recent_reports(rt, owned),
        "frequency": frequency,
        "alerts": list(rt.publisher.recent_alerts),
    }


def frequency_row(zone: ZoneEntry, freq: dict[str, Any], now: float) -> dict[str, Any]:
    """A zone's frequency response for the dashboard: where it stands, what it could shed,
    and the evidence of the activation under way (or of the last one)."""
    ctl = zone.controller
    available, _load, _n = flexibility(zone.load.stations, ctl.uncontrollable, ctl.t, now)
    evidence = freq.get("evidence") or (zone.recent_activations[-1]
                                        if zone.recent_activations else None)
    return {
        "zone_id": zone.zone_id, "area_id": freq["area_id"], "phase": freq["phase"],
        "level": freq["level"], "last_hz": freq["last_hz"],
        "required_kw": freq["required_kw"], "committed_kw": freq["committed_kw"],
        "available_kw": round(available, 3),
        "evidence": None if evidence is None else {
            k: evidence.get(k) for k in ("activation_id", "peak_required_kw", "delivered_kw",
                                         "time_to_50_s", "time_to_100_s", "timing_met",
                                         "end_ts")},
    }


def recent_reports(rt: Runtime, owned: set[int], limit: int = 10) -> list[dict[str, Any]]:
    """The newest settlement reports of this worker's zones, as the dashboard's table."""
    reports = [r for zone in rt.zones.in_partitions(owned) for r in zone.recent_reports]
    reports.sort(key=lambda r: r["report_ts"], reverse=True)
    return [
        {
            "zone_id": r["zone_id"],
            "signal_id": r["signal_id"],
            "ended": r["actual_end_ts"] or r["report_ts"],
            "delivered_pct": r["delivered_pct_of_target"],
            "time_to_cap_s": r["time_to_cap_s"],
            "stations_noncompliant": sum(1 for st in r["stations"]
                                         if st["seconds_noncompliant"] > 0),
        }
        for r in reports[:limit]
    ]


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
        pending = any(ingest.assignment_pending for ingest in rt.ingests)
        status, body = health_status(app, rt.settings.app_id, pending)
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
            zone_view(rt, zone.zone_id, now)
            for zone in sorted(rt.zones.in_partitions(owned), key=lambda z: z.zone_id)
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

    @app.page("/sites/{site_id}")
    @guarded
    async def site(web: Web, request: Request, site_id: str) -> Response:
        """Every worker knows every site's zone: the zone's owner answers."""
        known = rt.sites.sites.get(site_id)
        if known is None:
            return web.json({"error": f"unknown site {site_id!r}"}, status=404)
        location = f"/zones/{known.zone_id}/sites/{site_id}"
        return web.json({"location": location}, status=307, headers={"Location": location})

    @app.page("/zones/{zone_id}/sites/{site_id}")
    @app.table_route(table=rt.tables.zone_control, match_info="zone_id")
    @guarded
    async def zone_site(web: Web, request: Request, zone_id: str, site_id: str) -> Response:
        found = site_view(rt, site_id, time.time())
        if found is None or found["zone_id"] != zone_id:
            return web.json({"error": f"unknown site {site_id!r} in zone {zone_id!r}"},
                            status=404)
        return web.json(found)

    @app.page("/events/{signal_id}")
    @guarded
    async def event(web: Web, request: Request, signal_id: str) -> Response:
        found = local_event(rt, signal_id, time.time())
        if found is None and request.query.get("local") != "1":
            found = await ask_peers(app, signal_id, request.headers.get("Authorization"))
        if found is None:
            return web.json({"error": f"unknown DR event {signal_id!r}"}, status=404)
        return web.json(found)

    @app.page("/stations/{station_id}")
    @app.table_route(table=rt.tables.station_state, match_info="station_id")
    @guarded
    async def station(web: Web, request: Request, station_id: str) -> Response:
        found = station_view(rt, station_id, time.time())
        if found is None:
            return web.json({"error": f"unknown station {station_id!r}"}, status=404)
        return web.json(found)
