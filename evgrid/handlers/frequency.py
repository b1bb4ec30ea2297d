"""Frequency in: programs say which zones respond to which area; each measurement goes to the
controllers of the owned, warm zones of its area at once, on the frequency consumer's own loop
turn (`evgrid.ingest.frequency`), never behind meter values.

Every worker reads both topics whole, so a bad record is seen by all of them: only the worker
that owns the record's partition dead-letters it, and a program only when it arrives live.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from evgrid import metrics
from evgrid.handlers.decisions import publish_decisions
from evgrid.handlers.zone import ZoneStage
from evgrid.models.frequency import FrequencyMeasurement, FrequencyProgramRecord
from evgrid.publisher import Publisher, Record


class FrequencyHandler:
    def __init__(self, stage: ZoneStage, publisher: Publisher,
                 reports: Callable[[Record], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.stage = stage
        self.zones = stage.zones
        self.out = publisher
        #: Whether this worker is the one to dead-letter this record.
        self.reports = reports
        self.clock = clock
        #: area_id -> the zones whose program responds to it.
        self.areas: dict[str, set[str]] = {}

    def on_program(self, message: FrequencyProgramRecord | None, record: Record) -> None:
        """A zone's program, changed or removed (tombstone, keyed zone_id)."""
        zone_id = message.zone_id if message is not None else (record.key or b"").decode()
        program = None if message is None else message.program()
        old = self.zones.programs.pop(zone_id, None)
        if old is not None:
            self.areas.get(old.area_id, set()).discard(zone_id)
        if program is not None:
            self.zones.programs[zone_id] = program
            self.areas.setdefault(program.area_id, set()).add(zone_id)
        zone = self.zones.zones.get(zone_id)
        if zone is None:
            return  # a zone loaded later takes its program from the store
        now = self.clock()
        live = zone.partition in self.zones.owned and not zone.cold
        decisions = zone.controller.set_frequency_program(
            program, zone.load.stations if live else None, now)
        if live:
            publish_decisions(self.out, zone, decisions, now, self.stage.stale_after_s)
            self.zones.persist(zone)

    def on_measurement(self, m: FrequencyMeasurement, record: Record) -> None:
        """One measurement: each zone of its area re-allocates only if its quantised
        activation or phase changed."""
        metrics.FREQUENCY_HZ.labels(area=m.area_id).set(m.frequency_hz)
        zone_ids = self.areas.get(m.area_id)
        if not zone_ids:
            return
        received = time.perf_counter()
        now = self.clock()
        ts = m.ts.timestamp()
        owned = self.zones.owned
        for zone_id in sorted(zone_ids):
            zone = self.zones.zones.get(zone_id)
            if zone is None or zone.cold or zone.partition not in owned:
                continue
            decisions = zone.controller.on_frequency(m.frequency_hz, ts, zone.load.stations, now)
            if not decisions:
                continue
            publish_decisions(self.out, zone, decisions, now, self.stage.stale_after_s)
            self.zones.persist(zone)
            if decisions.commands:
                metrics.FREQUENCY_REACTION.observe(time.perf_counter() - received)
            metrics.FREQUENCY_LEVEL.labels(zone=zone_id).set(zone.controller.freq.level)
