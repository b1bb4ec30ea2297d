"""A zone's frequency response inside its controller: the program, the response's state and
the evidence of the activation under way, and what they mean for the allocation.

The response (`evgrid.core.frequency`) says how much to shed and when to release; this module
turns that into the controller's terms: a zone cap while active, per-station ceilings while
restoring, the `Source` its commands carry, the activation record when it ends and an alert
when the area's frequency falls silent.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from evgrid.core.allocator import ac_floor_kw
from evgrid.core.control.commands import Commanded, Source
from evgrid.core.frequency.evidence import ActivationEvidence
from evgrid.core.frequency.program import FrequencyProgram
from evgrid.core.frequency.response import ACTIVE, IDLE, FrequencyResponse
from evgrid.core.types import AC_TYPES, StationRow, Tunables, live_power_kw

#: The signal id of a frequency activation's commands: "freq:" and the activation's id.
FREQUENCY_SIGNAL_PREFIX = "freq:"
#: Frequency containment is an emergency: its commands carry priority 1.
FREQUENCY_PRIORITY = 1
#: A frequency profile's `validTo` is this far ahead, re-sent at half of it: a worker that
#: dies mid-activation leaves no charger limited for long.
FREQUENCY_PROFILE_VALID_S = 120.0


@dataclass(slots=True)
class FrequencyEvents:
    """What one advance of the response produced for the controller to publish."""

    activation: dict | None = None  # the finished activation record
    silent: dict | None = None  # a FREQUENCY_SILENT alert body


class FrequencyControl:
    def __init__(self, zone_id: str, silence_s: float) -> None:
        self.zone_id = zone_id
        self.silence_s = silence_s
        self.program: FrequencyProgram | None = None
        self.response: FrequencyResponse | None = None
        self.evidence: ActivationEvidence | None = None
        self.last_hz: float | None = None
        self.silent_alerted = False
        #: The activation's lowest frequency and its measurement's time (every measurement
        #: counts; the evidence's samples are taken at the zone's steps).
        self.nadir: tuple[float, float] | None = None
        #: The record of an activation its program's removal ended, published at the next step.
        self.pending: dict | None = None

    # -- inputs -----------------------------------------------------------------------------

    def set_program(self, program: FrequencyProgram | None, now: float) -> bool:
        """A new, changed or removed program; True when the zone must re-allocate. Removing
        it releases an activation at once (the zone no longer offers anything) and ends its
        record; a change keeps the activation on the new curve."""
        if program == self.program:
            return False
        if program is None:
            engaged = self.engaged
            if self.evidence is not None:
                self.pending = self.finish(now, "PROGRAM")
            self.program = self.response = None
            return engaged
        self.program = program
        if self.response is None:
            self.response = FrequencyResponse(program, self.silence_s)
        else:
            self.response.reprogram(program)
        return False

    def measure(self, hz: float, ts: float, now: float, baseline: Callable[[], float]) -> bool:
        """A measurement of the zone's area; True when the zone must re-allocate."""
        r = self.response
        if r is None or self.program is None:
            return False
        self.last_hz = hz
        self.silent_alerted = False
        was = r.activation_id
        changed = r.measure(hz, ts, now, baseline)
        if r.activation_id is not None and r.activation_id != was:
            assert r.started_at is not None and r.baseline_kw is not None
            if self.evidence is not None:  # a new dip while restoring ends the one before
                self.pending = self.finish(now, "RECOVERED")
            self.evidence = ActivationEvidence(r.activation_id, self.program, r.started_at,
                                               r.baseline_kw)
            self.nadir = None
        if self.evidence is not None and (self.nadir is None or hz < self.nadir[0]):
            self.nadir = (hz, ts)
        return changed

    def advance(self, now: float, commanded: Mapping[str, Commanded],
                stations: Mapping[str, StationRow], stale_after_s: float) -> FrequencyEvents:
        """Time passes: silence, recovery, releases; the activation's evidence gets a sample."""
        ev = FrequencyEvents(activation=self.pending)
        self.pending = None
        r = self.response
        if r is None:
            return ev
        signal_id = self.signal_id()
        held = {s: c.target_kw for s, c in commanded.items() if c.signal_id == signal_id}
        was_phase = r.phase
        r.advance(now, held)
        if self.evidence is not None:
            load, age = zone_load(stations, now, stale_after_s)
            self.evidence.observe(now, None, r.required_kw(), load, age)
        if r.silenced and not self.silent_alerted and self.program is not None:
            self.silent_alerted = True
            ev.silent = silent_alert(self.zone_id, self.program, signal_id, self.silence_s,
                                     now)
        if was_phase != IDLE and r.phase == IDLE and self.evidence is not None:
            ended_by = "SILENCE" if r.silenced else "RECOVERED"
            ev.activation = self.finish(now, ended_by)
        return ev

    def finish(self, now: float, ended_by: str) -> dict:
        assert self.evidence is not None
        record = self.evidence.finish(now)
        if self.nadir is not None:
            record["nadir_hz"], record["nadir_ts"] = self.nadir
        self.evidence = None
        self.nadir = None
        return {**record, "ended_by": ended_by}

    # -- what it means for the allocation ---------------------------------------------------

    def cap_kw(self) -> float | None:
        r = self.response
        return None if r is None or self.program is None else r.cap_kw()

    def ceilings(self, now: float) -> dict[str, float]:
        r = self.response
        return {} if r is None else r.ceilings(now)

    @property
    def engaged(self) -> bool:
        """Active or restoring: the zone's stations are held by the response."""
        r = self.response
        return r is not None and r.phase != IDLE

    def signal_id(self) -> str:
        r = self.response
        activation_id = None if r is None else r.activation_id
        return FREQUENCY_SIGNAL_PREFIX + (activation_id or self.zone_id)

    def source(self, now: float, site: bool) -> Source:
        return Source(self.signal_id(), FREQUENCY_PRIORITY, now + FREQUENCY_PROFILE_VALID_S,
                      "FREQUENCY+SITE" if site else "FREQUENCY")

    def next_deadline(self, now: float) -> float | None:
        r = self.response
        return None if r is None else r.next_deadline(now)

    def view(self, now: float) -> dict | None:
        r, p = self.response, self.program
        if p is None:
            return None
        out: dict = {
            "area_id": p.area_id, "product": p.product, "committed_kw": p.committed_kw,
            "phase": IDLE if r is None else r.phase,
            "level": 0.0 if r is None else r.level,
            "required_kw": 0.0 if r is None else round(r.required_kw(), 3),
            "cap_kw": self.cap_kw(), "last_hz": self.last_hz,
            "activation_id": None if r is None else r.activation_id,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence.snapshot(now)
        return out

    @property
    def level(self) -> float:
        return 0.0 if self.response is None else self.response.level

    @property
    def active(self) -> bool:
        return self.response is not None and self.response.phase == ACTIVE

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict | None:
        if self.response is None or self.program is None:
            return None
        return {
            "program": self.program.to_dict(),
            "response": self.response.to_dict(),
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "last_hz": self.last_hz,
            "silent_alerted": self.silent_alerted,
            "nadir": None if self.nadir is None else list(self.nadir),
        }

    def load(self, d: dict | None) -> None:
        if d is None:
            return
        self.program = FrequencyProgram.from_dict(d["program"])
        self.response = FrequencyResponse.from_dict(d["response"], self.program,
                                                    self.silence_s)
        self.evidence = (None if d["evidence"] is None
                         else ActivationEvidence.from_dict(d["evidence"]))
        self.last_hz = d["last_hz"]
        self.silent_alerted = d["silent_alerted"]
        self.nadir = None if d["nadir"] is None else (d["nadir"][0], d["nadir"][1])


def zone_load(stations: Mapping[str, StationRow], now: float,
              stale_after_s: float) -> tuple[float, float]:
    """The zone's metered load and the median age of the newest reading behind it."""
    load = 0.0
    ages = []
    for row in stations.values():
        load += row.load_kw(now, stale_after_s)
        newest = None
        for c in row.connectors:  # a plain loop: a pass over the zone at every step
            if newest is None or c.arrival_ts > newest:
                newest = c.arrival_ts
        if newest is not None:
            age = now - newest
            ages.append(age if age > 0.0 else 0.0)
    return load, statistics.median(ages) if ages else 0.0


def governing_cap(view: dict) -> float | None:
    """The cap that governs a zone (from `ZoneController.view`): the lower of its DR cap and
    its frequency cap, None without either."""
    freq = view.get("frequency")
    caps = [c for c in (view["cap_kw"], None if freq is None else freq["cap_kw"])
            if c is not None]
    return min(caps) if caps else None


def flexibility(stations: Mapping[str, StationRow], uncontrollable: Mapping[str, float],
                t: Tunables, now: float) -> tuple[float, float, int]:
    """What the zone could shed now: Σ (live load − its floor) over its controllable stations
    (an uncontrollable one sheds nothing), the zone's load, and how many are controllable.
    Floors are the allocation's: a charging AC connector keeps its minimum current, a DC
    one its minimum power."""
    ac_floor = ac_floor_kw(t.ac_phases, t.ac_voltage_v, t.ac_min_current_a)
    available = load = 0.0
    controllable = 0
    for station_id, row in stations.items():
        station_load = 0.0
        station_floor = 0.0
        for c in row.connectors:
            kw = live_power_kw(c, now, t.stale_after_s)
            station_load += kw
            if kw > 0.0 and c.session_active:
                station_floor += min(kw, ac_floor if c.connector_type in AC_TYPES
                                     else t.dc_min_kw)
        load += station_load
        if station_id in uncontrollable:
            continue
        controllable += 1
        available += max(0.0, station_load - station_floor)
    return available, load, controllable


def silent_alert(zone_id: str, program: FrequencyProgram, signal_id: str, silence_s: float,
                 now: float) -> dict:
    """`alerts.dr.signals`: the zone's area has had no frequency measurement for the silence
    time; its response is disarmed and any activation released."""
    return {
        "alert_type": "FREQUENCY_SILENT",
        "zone_id": zone_id,
        "signal_id": signal_id,
        "detail": (f"no frequency measurement for area {program.area_id} in {silence_s:g} s "
                   "(EVGRID_FREQUENCY_SILENCE_S): response disarmed, stations released; "
                   "check the frequency source"),
        "detected_at": now,
    }
