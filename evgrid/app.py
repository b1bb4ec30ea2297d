"""The app factory: one Faust app per settings object, with its tables, agents, ingest Service,
clock and views. A factory rather than a module-level app, so tests and benchmarks can run
isolated apps with their own topic names and ids.

Faust carries the zone mappings and the outcomes, its tables, rebalancing, timers and web;
meter values, DR signals and the zone stage's station loads each go through a consumer
Service of their own that follows Faust's assignment (README "Performance" says why).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.transport.producer import ProducerBuffer
from faust.types import Message

from evgrid.agents.clock import RESOLUTION_S, ZoneClock
from evgrid.agents.runtime import Runtime
from evgrid.ingest.consumer import AssignedConsumer
from evgrid.ingest.handlers import SignalIngest, ZoneIngest
from evgrid.ingest.service import MeterIngest
from evgrid.publisher import ControlLink, raw_topic
from evgrid.settings import Settings
from evgrid.tables import define_tables

log = logging.getLogger(__name__)

#: Table changelog writes go through Faust's producer buffer; at its default of 100 messages it
#: logs a warning and stalls the stream every few milliseconds under load.
ProducerBuffer.max_messages = 10_000

#: Events per batch handed to the mapping and outcome agents. A batch is handled without
#: awaiting (with an await inside, the fuzz chaos test saw dead letters go missing: Faust's
#: take_events is not made for it), so it holds the loop — and a DR signal on the signal
#: ingest — for as long as it takes.
BATCH_MAX = 100
BATCH_WITHIN_S = 0.005


def superseded_recovery(app: faust.App) -> bool:
    """Faust sends `on_rebalance_complete` as a recovery ends, before it checks whether a
    newer rebalance has begun meanwhile; taken at its word, the batch consumers would load
    their new partitions before that rebalance's tables are restored. A newer rebalance has
    begun while its recovery has not yet picked it up."""
    recovery = getattr(app.tables, "recovery", None)
    return recovery is not None and recovery.signal_recovery_start.is_set()


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
        broker_max_poll_records=settings.broker_max_poll_records,
        consumer_auto_offset_reset="earliest",
        # Stateful agents stay at concurrency 1 and at-least-once (DESIGN.md: #606, #177).
        processing_guarantee="at_least_once",
        producer_max_request_size=settings.max_message_bytes + 65_536,
        # A poison message may be up to EVGRID_MAX_MESSAGE_BYTES and must still be fetched
        # (and dead-lettered), whatever the broker version does with oversized batches.
        consumer_max_fetch_size=4 * 1024 * 1024,
    )
    tables = define_tables(app, settings)
    rt = Runtime.build(app, settings, tables)
    rt.clock = ZoneClock(app, settings, rt.stage, rt.dr)
    app.evgrid = rt  # type: ignore[attr-defined]
    publisher = rt.publisher
    t = settings.topics
    n = settings.partitions

    def batched(on_message: Callable[[Message], None]) -> Callable[[faust.StreamT], Any]:
        """An agent body: batches of events, each handled synchronously, outputs drained
        once per batch."""

        async def agent(stream: faust.StreamT) -> None:
            async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
                for event in events:
                    # Table writes take their partition from the current event (Faust #497).
                    stream._set_current_event(event)
                    publisher.guarded(on_message, event.message)
                await publisher.drain()
                # Faust flushes its own producer before it commits; the control link's
                # messages (commands on an outcome or a station leaving) are acked here
                # (waiting while the broker is away).
                await publisher.control_acked()

        return agent

    app.agent(raw_topic(app, t.station_zones, t.station_zones_repartition, partitions=n),
              name="evgrid.station-config", concurrency=1)(batched(rt.configs.on_message))
    app.agent(raw_topic(app, t.outcomes, t.outcomes_repartition, partitions=n),
              name="evgrid.outcomes", concurrency=1)(batched(rt.outcomes.on_message))

    # Instances, not classes: rebalance signals may arrive before Faust would build them.
    # Meter values, DR signals and station loads each have a consumer of their own.
    services: list[AssignedConsumer] = [MeterIngest(rt), SignalIngest(rt), ZoneIngest(rt)]
    rt.ingests = services
    # The control loop's producer first: started before the Services, stopped after them.
    publisher.control = ControlLink(settings)
    app._extra_services.extend([publisher.control, *services])  # type: ignore[list-item]

    @app.timer(RESOLUTION_S)
    async def zone_clock() -> None:
        # Never waits on the broker: decisions fall due on time through any outage, and
        # their outputs wait in the control link's outbox.
        rt.clock.run_once()
        publisher.drain_soon()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set, **kwargs: object) -> None:
        for service in services:
            await service.on_revoked()

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set, **kwargs: object) -> None:
        owned = {tp.partition for tp in app.assignor.assigned_actives()
                 if tp.topic == t.station_zones}
        for service in services:
            service.on_assigned(owned)

    @app.on_rebalance_complete.connect
    async def on_recovered(app: faust.App, **kwargs: object) -> None:
        if superseded_recovery(app):
            return  # the newer rebalance's own recovery says so when it is done
        rt.zones.keep_only(rt.clock.owned_partitions(), time.time())
        for service in services:
            service.on_recovered()

    from evgrid.web.views import register_views

    register_views(app, rt)
    return app
