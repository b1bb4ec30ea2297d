"""Everything a worker's agents, ingest Service, clock and views share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import faust

from evgrid.agents.dr import DRSignals
from evgrid.agents.outcomes import CommandOutcomes
from evgrid.agents.station_config import StationConfigs
from evgrid.agents.zone import ZoneStage
from evgrid.ingest.stations import StationIngest
from evgrid.publisher import Publisher
from evgrid.settings import Settings
from evgrid.state.stations import StationStore
from evgrid.state.zones import ZoneStore
from evgrid.tables import Tables

if TYPE_CHECKING:
    from evgrid.agents.clock import ZoneClock
    from evgrid.ingest.consumer import AssignedConsumer


@dataclass
class Runtime:
    app: faust.App
    settings: Settings
    tables: Tables
    publisher: Publisher
    stations: StationStore
    ingest: StationIngest
    configs: StationConfigs
    zones: ZoneStore
    stage: ZoneStage
    dr: DRSignals
    outcomes: CommandOutcomes
    clock: ZoneClock = field(init=False)
    #: The batch consumers beside Faust's (meter values, DR signals, station loads).
    ingests: list[AssignedConsumer] = field(default_factory=list)

    @classmethod
    def build(cls, app: faust.App, settings: Settings, tables: Tables) -> Runtime:
        t = settings.topics
        tunables = settings.tunables()
        publisher = Publisher(app, settings)
        stations = StationStore(tables, tunables, settings.partitions, t.station_zones)
        ingest = StationIngest(settings, stations, publisher)
        zones = ZoneStore(tables, tunables, settings.partitions, t.station_load,
                          settings.zone_warmup_s)
        stage = ZoneStage(settings, zones, publisher)
        return cls(
            app=app, settings=settings, tables=tables, publisher=publisher,
            stations=stations, ingest=ingest,
            configs=StationConfigs(settings, ingest, publisher),
            zones=zones, stage=stage, dr=DRSignals(settings, stage, publisher),
            outcomes=CommandOutcomes(settings, stations, publisher),
        )
