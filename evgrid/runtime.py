"""Everything a worker's consumers, clock and views share, built once per app: the state, the
handlers, and the one route table that joins them to the topics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faust

from evgrid import metrics
from evgrid.handlers.clock import ZoneClock
from evgrid.handlers.frequency import FrequencyHandler
from evgrid.handlers.signals import DRSignals
from evgrid.handlers.sites import SiteHandler
from evgrid.handlers.stations import StationSide
from evgrid.handlers.zone import ZoneStage
from evgrid.ingest.consumer import AssignedConsumer
from evgrid.ingest.frequency import FrequencyIngest
from evgrid.ingest.meters import MeterIngest
from evgrid.ingest.records import RowIngest, SignalIngest, StationConfigIngest
from evgrid.ingest.routing import InputPath, Route, Router
from evgrid.ingest.sites import SiteIngest
from evgrid.models import DemandResponseSignal, StationZone
from evgrid.models.frequency import FrequencyMeasurement, FrequencyProgramRecord
from evgrid.models.inputs import METER_VALUE, GatewayOutcome, SiteRecord
from evgrid.models.internal import LOADS_KEY_PREFIX, ZONE_PICTURE
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings
from evgrid.state.sites import SiteBook
from evgrid.state.stations import StationStore
from evgrid.state.zones import ZoneStore
from evgrid.tables import Tables


def input_path(settings: WorkerSettings, out: Publisher, side: StationSide, stage: ZoneStage,
               dr: DRSignals, sites: SiteHandler | None = None,
               frequency: FrequencyHandler | None = None) -> InputPath:
    """The route table: every topic a worker consumes, its model and its handler."""
    t, i, n = settings.topics, settings.internal_topics, settings.partitions
    path = InputPath(out, settings.max_message_bytes)
    path.add((t.meter_values, i.meter_repartition), Route(
        METER_VALUE, side.on_meter_value, lambda m: m[0],
        Router(n, i.meter_repartition, out)))
    path.add((t.station_zones, i.station_zones_repartition), Route(
        StationZone, side.on_mapping, lambda m: m.station_id,
        Router(n, i.station_zones_repartition, out), tombstones=True))
    path.add((t.outcomes, i.outcomes_repartition), Route(
        GatewayOutcome, side.on_outcome, lambda m: m.station_id,
        Router(n, i.outcomes_repartition, out)))
    path.add((t.demand_response, i.dr_repartition), Route(
        DemandResponseSignal, dr.on_signal, lambda m: m.zone_id,
        Router(n, i.dr_repartition, out)))
    # Written by the station sides, in the zone's partition: trusted, never re-routed.
    path.add((i.station_rows,), Route(ZONE_PICTURE, stage.on_picture, tombstones=True,
                                      skip=stale_loads(settings.stale_after_s)))
    if sites is not None:
        # Read whole by every worker: not re-routed; one worker dead-letters a bad record.
        path.add((t.sites,), Route(SiteRecord, sites.on_site, tombstones=True,
                                   deadletter_when=sites.reports))
    if frequency is not None:
        # Both read whole by every worker (a broadcast), like the sites.
        path.add((t.frequency_programs,), Route(
            FrequencyProgramRecord, frequency.on_program, tombstones=True,
            deadletter_when=frequency.reports))
        path.add((t.frequency,), Route(FrequencyMeasurement, frequency.on_measurement,
                                       deadletter_when=frequency.reports))
    return path


def stale_loads(stale_after_s: float) -> Callable[[Record], bool]:
    """A zone's loads record older than the stale limit (read back after a rebalance) holds
    only readings that count 0 kW: not worth decoding."""
    prefix = LOADS_KEY_PREFIX.encode()

    def skip(record: Record) -> bool:
        ts = record.timestamp
        return bool(ts and record.key and record.key.startswith(prefix)
                    and ts < (time.time() - stale_after_s) * 1000)

    return skip


@dataclass
class Runtime:
    app: faust.App
    settings: WorkerSettings
    tables: Tables
    publisher: Publisher
    stations: StationStore
    side: StationSide
    zones: ZoneStore
    stage: ZoneStage
    dr: DRSignals
    inputs: InputPath
    clock: ZoneClock
    sites: SiteBook
    #: The batch consumers beside Faust's: meter values, mappings and outcomes, DR signals,
    #: station rows.
    ingests: list[AssignedConsumer] = field(default_factory=list)
    #: Every partition of config.sites, on every worker (started before the others).
    site_ingest: SiteIngest | None = None
    #: Every partition of grid.frequency and config.frequency_programs, on every worker.
    frequency_ingest: FrequencyIngest | None = None

    @classmethod
    def build(cls, app: faust.App, settings: WorkerSettings, tables: Tables) -> Runtime:
        t = settings.topics
        tunables = settings.tunables()
        publisher = Publisher(app, settings)
        book = SiteBook()
        stations = StationStore(tables, tunables, settings.partitions, t.station_zones)
        side = StationSide(settings, stations, publisher, book)
        zones = ZoneStore(tables, tunables, settings.partitions,
                          settings.internal_topics.station_rows, book)
        # Table changes leave on the publisher, in batches (not through Faust's buffer).
        stations.writer.changelog = zones.writer.changelog = publisher
        stage = ZoneStage(settings, zones, publisher)
        dr = DRSignals(settings, stage, publisher)
        site_ingest: SiteIngest | None = None
        freq_ingest: FrequencyIngest | None = None
        # A bad site record is dead-lettered once: by the owner of its partition, live.
        handler = SiteHandler(book, publisher, lambda r: r.partition in zones.owned
                              and site_ingest is not None and site_ingest.live(r))
        frequency = FrequencyHandler(stage, publisher, lambda r: r.partition in zones.owned
                                     and freq_ingest is not None and freq_ingest.live(r))
        rt = cls(
            app=app, settings=settings, tables=tables, publisher=publisher,
            stations=stations, side=side, zones=zones, stage=stage, dr=dr,
            inputs=input_path(settings, publisher, side, stage, dr, handler, frequency),
            clock=ZoneClock(app, settings, stage, dr), sites=book,
        )
        dispatch = rt.inputs.dispatch
        site_ingest = rt.site_ingest = SiteIngest(settings, publisher, dispatch)
        freq_ingest = rt.frequency_ingest = FrequencyIngest(settings, publisher, dispatch,
                                                            zones=frequency.run)
        loaded = site_ingest.loaded
        rt.ingests = [
            MeterIngest(settings, publisher, dispatch, stations, side),
            StationConfigIngest(settings, publisher, dispatch, wait_for=loaded),
            SignalIngest(settings, publisher, dispatch, zones),
            RowIngest(settings, publisher, dispatch, zones, rt.zone_partition_loaded,
                      wait_for=loaded),
        ]
        return rt

    def follow_assignment(self, owned: set[int]) -> None:
        """Faust recovered the tables of a new assignment: station and zone state follow it
        before any consumer resumes."""
        now = time.time()
        for _partition in self.stations.keep_only(owned):
            metrics.INGEST_PARTITIONS_LOADED.inc()
        metrics.forget_zones(self.zones.keep_only(owned, now))

    def zone_partition_loaded(self, partition: int) -> None:
        """A partition's rows are read back: its zones warm, clear stations that left while
        nobody owned them, and take the signals they held."""
        now = time.time()
        for zone in self.zones.loaded(partition):
            self.stage.on_warm(zone, now)
            if zone.pending_signals:
                self.dr.apply_pending(zone, now)
