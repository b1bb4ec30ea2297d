"""Everything a worker's agents share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evgrid.agents.publish import Publisher
from evgrid.agents.station import StationSide
from evgrid.agents.zone import ZoneSide
from evgrid.settings import Settings
from evgrid.tables import Tables

if TYPE_CHECKING:
    from evgrid.agents.clock import ZoneClock


@dataclass
class Runtime:
    settings: Settings
    tables: Tables
    publisher: Publisher
    stations: StationSide
    zones: ZoneSide
    clock: ZoneClock = field(init=False)
