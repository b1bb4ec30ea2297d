"""Frequency in: programs say which zones respond to which area; each measurement is due to the
controllers of the owned, warm zones of its area at once, and `run` (a task of the frequency
consumer, `evgrid.ingest.frequency`) gives them their turns, zone by zone, never behind meter
values.

Every worker reads both topics whole, so a bad record is seen by all of them: only the worker
that owns the record's partition dead-letters it, and a program only when it arrives live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from evgrid import metrics
from evgrid.handlers.decisions import publish_decisions
from evgrid.handlers.zone import ZoneStage
from evgrid.heap import collection_paused
from evgrid.models.frequency import FrequencyMeasurement, FrequencyProgramRecord
from evgrid.publisher import Publisher, Record
from evgrid.state.zones import ZoneEntry

log = logging.getLogger(__name__)

#: After a round, the longest the garbage collector waits for its commands to be handed to
#: the producer (longer only while the broker is away).
HANDED_OVER_WAIT_S = 0.5


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
        #: zone_id -> the measurements it has yet to take (Hz, their ts, arrival), zones in
        #: the order their first one arrived.
        self.due: dict[str, list[tuple[float, float, float]]] = {}
        self.wake = asyncio.Event()

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
        """One measurement: each zone of its area is due to take it. `run` gives each zone
        its turn, with every measurement that came for it meanwhile, in order: the
        activation starts at the measurement that crossed, however late its turn."""
        metrics.FREQUENCY_HZ.labels(area=m.area_id).set(m.frequency_hz)
        zone_ids = self.areas.get(m.area_id)
        if not zone_ids:
            return
        received = time.perf_counter()
        ts = m.ts.timestamp()
        for zone_id in sorted(zone_ids):
            self.due.setdefault(zone_id, []).append((m.frequency_hz, ts, received))
        self.wake.set()

    async def run(self) -> None:
        """Rounds over the zones due: each zone's commands handed to the producer as soon as
        they are decided, so the first zone's leave while the hundredth is still being
        computed. A round is urgent (`Publisher.urgent`): meter values, station rows and the
        zone clock wait for it, and the garbage collector waits until its commands are in
        the producer's batches; the zones' state is written after that."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            decided: dict[str, ZoneEntry] = {}
            with collection_paused():
                await self._round(decided)
                # The collection the round put off (tens of milliseconds over the commands
                # it built) waits until they are in the producer's batches too.
                await self.out.control_handed_over(HANDED_OVER_WAIT_S)
            for zone_id, zone in decided.items():
                if zone.partition in self.zones.owned and self.zones.zones.get(zone_id) is zone:
                    self.zones.persist(zone)  # not a zone that moved away meanwhile

    async def _round(self, decided: dict[str, ZoneEntry]) -> None:
        """Every zone due, in turn, each with the measurements that came for it."""
        with self.out.urgent():
            while self.due:
                zone_id = next(iter(self.due))
                for hz, ts, received in self.due.pop(zone_id):
                    try:
                        zone = self.apply(zone_id, hz, ts, received)
                    except Exception:  # one zone's failure must not disarm the others
                        log.exception("evgrid frequency: zone %s failed to take %.3f Hz",
                                      zone_id, hz)
                        continue
                    if zone is not None:
                        decided[zone_id] = zone
                self.out.drain_soon()
                await asyncio.sleep(0)

    def apply(self, zone_id: str, hz: float, ts: float, received: float) -> ZoneEntry | None:
        """The zone re-allocates only if its quantised activation or phase changed; returns
        the zone when it decided something (its state is then to be written)."""
        zone = self.zones.zones.get(zone_id)
        if zone is None or zone.cold or zone.partition not in self.zones.owned:
            return None
        now = self.clock()
        decisions = zone.controller.on_frequency(hz, ts, zone.load.stations, now)
        if not decisions:
            return None
        publish_decisions(self.out, zone, decisions, now, self.stage.stale_after_s)
        if decisions.commands:
            metrics.FREQUENCY_REACTION.observe(time.perf_counter() - received)
        metrics.FREQUENCY_LEVEL.labels(zone=zone_id).set(zone.controller.freq.level)
        return zone
