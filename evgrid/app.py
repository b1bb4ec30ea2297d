"""The app factory: one Faust app per settings object, with its tables, agents, clock and
views. A factory rather than a module-level app, so tests and benchmarks can run isolated apps
with their own topic names and ids."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.transport.producer import ProducerBuffer
from faust.types import Message

from evgrid.agents.clock import RESOLUTION_S, ZoneClock
from evgrid.agents.publish import Publisher, raw_topic
from evgrid.agents.runtime import Runtime
from evgrid.agents.station import StationSide
from evgrid.agents.zone import ZoneSide
from evgrid.codec import DecodeError
from evgrid.settings import Settings
from evgrid.tables import define_tables

log = logging.getLogger(__name__)

#: Table changelog writes go through Faust's producer buffer; at its default of 100 messages it
#: logs a warning and stalls the stream every few milliseconds under load.
ProducerBuffer.max_messages = 10_000

#: Events per batch handed to an agent: enough to amortise per-batch work, small enough that a
#: DR signal waits behind at most a few milliseconds of readings.
BATCH_MAX = 500
BATCH_WITHIN_S = 0.005


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=settings.faust_credentials(),
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

    t = settings.topics
    station_channel = raw_topic(
        app, t.meter_values, t.station_zones, t.meter_repartition, partitions=settings.partitions
    )
    zone_channel = raw_topic(
        app, t.demand_response, t.station_load, partitions=settings.partitions
    )

    def batched(on_message: Callable[[Message], None]) -> Callable[[faust.StreamT], Any]:
        """An agent body: batches of events, each handled synchronously, outputs drained
        once per batch."""

        async def agent(stream: faust.StreamT) -> None:
            async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
                for event in events:
                    # Table writes take their partition from the current event (Faust #497).
                    stream._set_current_event(event)
                    try:
                        on_message(event.message)
                    except Exception as exc:  # a bug must not make one message a crash loop
                        msg = event.message
                        log.exception("evgrid: failed on %s[%s]@%s", msg.topic, msg.partition,
                                      msg.offset)
                        publisher.deadletter(msg, DecodeError("internal_error", repr(exc)))
                await publisher.drain()

        return agent

    app.agent(station_channel, name="evgrid.station", concurrency=1)(
        batched(rt.stations.on_message)
    )
    app.agent(zone_channel, name="evgrid.zone", concurrency=1)(batched(rt.zones.on_message))

    @app.timer(RESOLUTION_S)
    async def zone_clock() -> None:
        rt.clock.run_once()
        await publisher.drain()

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
