"""`/health` and `/metrics` for an edge process (the SQL sink, the OpenADR VEN): a small aiohttp
server, the same for each, so a probe and a Prometheus scrape see every process alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Health = Callable[[], tuple[int, dict[str, Any]]]


async def serve_probes(host: str, port: int, health: Health) -> web.AppRunner:
    """Serve `/health` (`health()` gives the status and the body) and `/metrics`; the
    caller cleans the returned runner up."""

    async def health_view(_: web.Request) -> web.Response:
        status, body = health()
        return web.json_response(body, status=status)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(),
                            content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app = web.Application()
    app.add_routes([web.get("/health", health_view), web.get("/metrics", metrics_view)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
