"""The app factory: one Faust app per settings object, with its tables, batch consumers,
clock and views. A factory rather than a module-level app, so tests and benchmarks can run
isolated apps with their own topic names and ids.

Faust carries the app, its tables, rebalancing, timers and the web server. No input goes
through Faust's per-event path: meter values, zone mappings with command outcomes, DR signals
and station rows each have a batch consumer of their own that follows Faust's assignment
(`evgrid.ingest`), all through one route table (`evgrid.runtime.input_path`).
"""

from __future__ import annotations

import logging

import faust
from faust.transport.producer import ProducerBuffer

from evgrid.control_link import ControlLink
from evgrid.handlers.clock import RESOLUTION_S
from evgrid.publisher import raw_topic
from evgrid.runtime import Runtime
from evgrid.settings import WorkerSettings
from evgrid.state.outbox import OutboxStore
from evgrid.tables import TableManager, define_tables

log = logging.getLogger(__name__)

#: Table changelog writes go through Faust's producer buffer; at its default of 100 messages it
#: logs a warning and stalls the stream every few milliseconds under load.
ProducerBuffer.max_messages = 10_000
#: Records per poll of Faust's own consumer (its tables' changelogs during recovery).
MAX_POLL_RECORDS = 500


def superseded_recovery(app: faust.App) -> bool:
    """Faust sends `on_rebalance_complete` as a recovery ends, before it checks whether a
    newer rebalance has begun meanwhile; taken at its word, the batch consumers would load
    their new partitions before that rebalance's tables are restored. A newer rebalance has
    begun while its recovery has not yet picked it up."""
    recovery = getattr(app.tables, "recovery", None)
    return recovery is not None and recovery.signal_recovery_start.is_set()


def create_app(settings: WorkerSettings) -> faust.App:
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
        broker_max_poll_records=MAX_POLL_RECORDS,
        consumer_auto_offset_reset="earliest",
        # At-least-once: faust-streaming #177, #323, #517 report duplicates under exactly_once.
        processing_guarantee="at_least_once",
        producer_max_request_size=settings.max_message_bytes + 65_536,
        # A poison message may be up to EVGRID_MAX_MESSAGE_BYTES and must still be fetched
        # (and dead-lettered), whatever the broker version does with oversized batches.
        consumer_max_fetch_size=4 * 1024 * 1024,
        TableManager=TableManager,
        # Nothing runs on a leader only, so there is no leader topic: Faust would create it
        # as it starts, too late for the first join's metadata, which then leaves it out.
        topic_disable_leader=True,
    )
    tables = define_tables(app, settings)
    # Faust's assignment drives every consumer of the worker, and it assigns the partitions
    # of the topics its agents read: this one carries nothing, so nothing takes Faust's
    # per-event path, and it is co-partitioned with every input.
    driver = raw_topic(app, settings.internal_topics.assignment, partitions=settings.partitions)

    @app.agent(driver, name="evgrid.assignment", concurrency=1)
    async def assignment(stream: faust.StreamT) -> None:
        async for _ in stream:  # never written: a record here is somebody's mistake
            pass

    rt = Runtime.build(app, settings, tables)
    app.evgrid = rt  # type: ignore[attr-defined]
    publisher = rt.publisher
    services = rt.ingests
    # The control loop's producer first: started before the consumers, stopped after them.
    # Instances, not classes: rebalance signals may arrive before Faust would build them.
    publisher.control = ControlLink(
        settings, OutboxStore.open(settings.data_dir / f"{settings.app_id}-outbox"))
    # The sites and frequency consumers follow no assignment (they read every partition):
    # before the others.
    app._extra_services.extend(  # type: ignore[list-item]
        [publisher.control, rt.site_ingest, rt.frequency_ingest, *services])

    @app.timer(RESOLUTION_S)
    async def zone_clock() -> None:
        # Never waits on the broker: decisions fall due on time through any outage, and
        # their outputs wait in the control link's outbox.
        await rt.clock.run_once()
        publisher.drain_soon()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set, **kwargs: object) -> None:
        for service in services:
            await service.on_revoked()

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set, **kwargs: object) -> None:
        owned = rt.clock.owned_partitions()
        for service in services:
            service.on_assigned(owned)

    @app.on_rebalance_complete.connect
    async def on_recovered(app: faust.App, **kwargs: object) -> None:
        if superseded_recovery(app):
            return  # the newer rebalance's own recovery says so when it is done
        rt.follow_assignment(rt.clock.owned_partitions())
        for service in services:
            service.on_recovered()

    from evgrid.web.views import register_views

    register_views(app, rt)
    return app
