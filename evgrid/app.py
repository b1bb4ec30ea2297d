"""The app factory: one Faust app per settings object, with its tables, agents, clock and
views. A factory rather than a module-level app, so tests and benchmarks can run isolated apps
with their own topic names and ids."""

from __future__ import annotations

import faust

from evgrid.agents.clock import RESOLUTION_S, ZoneClock
from evgrid.agents.publish import Publisher, raw_topic
from evgrid.agents.runtime import Runtime
from evgrid.agents.station import StationSide, register_station_agent
from evgrid.agents.zone import ZoneSide
from evgrid.settings import Settings
from evgrid.tables import define_tables


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store=settings.store,
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        # Stateful agents stay at concurrency 1 and at-least-once (DESIGN.md: #606, #177).
        processing_guarantee="at_least_once",
        producer_max_request_size=settings.max_message_bytes + 65_536,
        consumer_max_fetch_size=4 * 1024 * 1024,
    )
    tables = define_tables(app, settings)
    publisher = Publisher(app, settings)
    rt = Runtime(
        settings=settings,
        tables=tables,
        publisher=publisher,
        stations=StationSide(settings, tables, publisher),
        zones=ZoneSide(settings, tables, publisher),
    )
    rt.clock = ZoneClock(app, settings, rt.zones, publisher)
    app.evgrid = rt  # type: ignore[attr-defined]

    register_station_agent(app, rt.stations, settings)

    t = settings.topics
    zone_channel = raw_topic(
        app, t.demand_response, t.station_load, partitions=settings.partitions
    )

    @app.agent(zone_channel, name="evgrid.zone", concurrency=1)
    async def zone_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            rt.zones.on_message(event.message)

    @app.timer(RESOLUTION_S)
    async def zone_clock() -> None:
        rt.clock.run_once()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set, **kwargs: object) -> None:
        rt.stations.forget()
        rt.zones.forget()
        rt.clock.on_assignment_changed()

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set, **kwargs: object) -> None:
        rt.clock.on_assignment_changed()

    from evgrid.web.views import register_views

    register_views(app, rt)
    return app
