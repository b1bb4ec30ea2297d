"""Everything DR for one zone, orchestrated: lifecycle, demand, allocation, commands,
compliance, outcomes, status and reports.

Pure: the zone stage feeds it signals, the zone's stations, gateway outcomes and the time, and
publishes the `Decisions` it returns. Its whole state round-trips through `to_dict` (layout in
`evgrid.core.control.state`), so a worker that crashed mid-event makes the same decisions,
with the same command ids, and emits one report per event, after it restores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from evgrid.core.allocator import StationDemand, rotation_index
from evgrid.core.compliance import StationCompliance
from evgrid.core.control import demand as dem
from evgrid.core.control import reporting, state
from evgrid.core.control.commands import (
    Commanded,
    Source,
    clear_command,
    commanded_from,
    limit_command,
    source_for,
    suspended_of,
)
from evgrid.core.control.decisions import Decisions, RefusedSignal, refusal
from evgrid.core.control.diff import needs_limit
from evgrid.core.control.frequency import FrequencyControl
from evgrid.core.control.sites import SiteControl, site_of
from evgrid.core.control.status import (
    StatusFigures,
    check_compliance,
    controller_view,
    publish_statuses,
    status_body,
)
from evgrid.core.frequency.program import FrequencyProgram
from evgrid.core.lifecycle import (
    ENDED,
    IGNORED,
    REFUSED,
    RESTORED,
    UNKNOWN,
    DREvent,
    DRSignal,
    EventBook,
)
from evgrid.core.nested import allocate_nested
from evgrid.core.reports import EventReport
from evgrid.core.sites import SiteConfig
from evgrid.core.types import StationRow, Tunables

#: While an event is active the zone is re-evaluated this often (new sessions, compliance).
REALLOCATE_EVERY_S = 1.0
#: The held demand of a station that has none (read-only, shared).
_NO_HELD: Mapping[int, float] = MappingProxyType({})

#: Gateway outcome statuses. Accepted makes a station
#: controllable again, Superseded says nothing about it; every other status (Rejected,
#: NotSupported, CallError, Timeout, Offline, Expired) makes it uncontrollable.
ACCEPTED, SUPERSEDED = "Accepted", "Superseded"


class ZoneController:
    def __init__(self, zone_id: str, tunables: Tunables) -> None:
        self.zone_id = zone_id
        self.t = tunables
        self.book = EventBook(tunables.max_events_per_zone)
        self.commanded: dict[str, Commanded] = {}  # station_id -> its last SET
        self.compliance: dict[str, StationCompliance] = {}
        self.uncontrollable: dict[str, float] = {}  # station_id -> since
        self.held: dem.HeldDemand = {}  # uncurtailed demand while an event is active
        self.seq: dict[str, int] = {}  # station_id -> commands sent to it (ids stay unique)
        self.shortfall_kw = 0.0
        self.last_step = 0.0
        self.wake_at: float | None = None  # an outcome asks for a step without stations
        self.refusing = False  # in a too_many_events episode
        self.published: dict[str, StatusFigures] = {}  # signal_id -> last status figures
        self.reports: dict[str, EventReport] = {}  # signal_id -> accumulator (active events)
        #: The zone's sites (a view of config.sites the zone store keeps current; not state).
        self.sites: Mapping[str, SiteConfig] = {}
        self.site = SiteControl(tunables)  # which sites are limited, their demands
        self.site_shortfall_kw: dict[str, float] = {}
        #: Frequency response: its program (a view of config.frequency_programs, kept with
        #: the activation it drives) and the activation under way.
        self.freq = FrequencyControl(zone_id, tunables.frequency_silence_s)

    # -- inputs -----------------------------------------------------------------------------

    def on_signal(
        self, signal: DRSignal, stations: Mapping[str, StationRow], now: float
    ) -> Decisions:
        d = Decisions()
        outcome = self.book.receive(signal, now)
        if outcome == REFUSED:
            d.refused.append(self._refusal(signal))
            return d
        if outcome in (IGNORED, UNKNOWN):
            return d
        ev = self.book.get(signal.signal_id)
        assert ev is not None
        ended = [ev] if outcome == RESTORED else []
        self._step(stations, now, d, {ev.signal_id}, ended)
        return d

    def on_tick(self, stations: Mapping[str, StationRow], now: float) -> Decisions:
        d = Decisions()
        self._step(stations, now, d, set(), [])
        self.book.purge(now, self.t.event_retention_s)
        return d

    def on_frequency(
        self, hz: float, ts: float, stations: Mapping[str, StationRow], now: float
    ) -> Decisions:
        """A measurement of the zone's area: a step only when the quantised activation or the
        response's phase changed (a noisy frequency does not re-command anyone)."""
        d = Decisions()
        if self.freq.measure(hz, ts, now, lambda: self._uncurtailed(stations, now)):
            self._step(stations, now, d, set(), [])
        return d

    def set_frequency_program(
        self, program: FrequencyProgram | None, stations: Mapping[str, StationRow] | None,
        now: float,
    ) -> Decisions:
        """The zone's program changed or went; a removed program releases its activation."""
        d = Decisions()
        if self.freq.set_program(program, now):
            if stations is None:
                self.wake_at = now
            else:
                self._step(stations, now, d, set(), [])
        return d

    def on_station_removed(
        self, station_id: str, stations: Mapping[str, StationRow], now: float
    ) -> Decisions:
        """A station left the zone (moved or tombstoned): CLEAR its profile at once, and
        re-allocate the cap over the stations left."""
        d = Decisions()
        self._clear(station_id, now, d)
        self.held.pop(station_id, None)
        self.site.held.pop(station_id, None)
        if self.book.active() or self.site.limited(self.sites):
            left = {k: v for k, v in stations.items() if k != station_id}
            self._step(left, now, d, set(), [])
        return d

    def on_outcome(
        self, station_id: str, command_id: str, status: str, now: float,
        stations: Mapping[str, StationRow] | None = None,
    ) -> Decisions:
        """The gateway's outcome of a command. A SET for the active event that did not end
        Accepted makes the station uncontrollable (its load fixed, the others re-allocated);
        a later Accepted makes it controllable again. Without `stations` the re-allocation
        waits for the next step, which `next_deadline` asks for at once."""
        prev = self.commanded.get(station_id)
        if prev is None or prev.command_id != command_id or status == SUPERSEDED:
            return Decisions()  # an old command, a CLEAR, or nothing to say
        uncontrollable = status != ACCEPTED
        if uncontrollable == (station_id in self.uncontrollable):
            return Decisions()  # it stands as it stood
        if uncontrollable:
            self.uncontrollable[station_id] = now
        else:
            del self.uncontrollable[station_id]
        if stations is None:
            self.wake_at = now
            return Decisions()
        d = Decisions()
        self._step(stations, now, d, set(), [])
        return d

    def next_deadline(self, now: float) -> float | None:
        due = self.book.next_deadline()
        period = None
        if self.book.active() or (self.commanded and not self.sites) \
                or self.freq.engaged:
            period = REALLOCATE_EVERY_S
        elif self.sites:  # site limits alone: compliance, hold and renewal; rows wake it
            period = self.t.site_step_s
        if period is not None:
            periodic = self.last_step + period
            due = periodic if due is None else min(due, periodic)
        release = self.site.next_release(self.t.site_hold_s)
        if release is not None:  # a site's hold ends: released on time
            due = release if due is None else min(due, release)
        if self.wake_at is not None:
            due = self.wake_at if due is None else min(due, self.wake_at)
        freq = self.freq.next_deadline(now)
        if freq is not None:
            due = freq if due is None else min(due, freq)
        return due

    def note_row(self, row: StationRow, now: float) -> None:
        """A station's new row: a step at once when it changes its site's demand (a session
        starts or draws more than held, or one ends), so a site is limited without waiting
        for the next periodic step; and when a station drawing power joins a zone that is
        curtailed (a member the zone did not know yet, or a new session), so it is given its
        share at the clock's next turn, not a second later."""
        station_id = row.station_id
        new = station_id not in self.commanded and station_id not in self.held
        joins = new and (self.freq.active or self.book.governing() is not None) \
            and row.load_kw(now, self.t.stale_after_s) > 0.0
        if joins or (self.sites and self.site.changes_demand(row, self.sites, now)):
            self.wake_at = now if self.wake_at is None else min(self.wake_at, now)

    def is_live(self, signal_id: str) -> bool:
        """Scheduled or active (not ended, not refused)."""
        return signal_id in self.book.live

    def active_events(self) -> list[DREvent]:
        return self.book.active()

    # -- the step ---------------------------------------------------------------------------

    def _step(
        self, stations: Mapping[str, StationRow], now: float, d: Decisions,
        force_status: set[str], ended: list[DREvent],
    ) -> None:
        self.last_step = now
        self.wake_at = None
        if self.sites or self.site.limits:
            d.site_alerts.extend(self.site.update(self.sites, stations, now))
        fev = self.freq.advance(now, self.commanded, stations, self.t.stale_after_s)
        if fev.silent is not None:
            d.signal_alerts.append(fev.silent)
        if fev.activation is not None:
            d.activations.append(fev.activation)
        changed = self.book.advance(now, lambda: self._uncurtailed(stations, now))
        ended = ended + [ev for ev in changed if ev.state == ENDED]
        force_status |= {ev.signal_id for ev in changed}
        gov = self.book.governing()
        limited = self.site.limited(self.sites)
        freq = self.freq.engaged
        if gov is None:
            self.shortfall_kw = 0.0
            if not freq:
                self.held.clear()
        if gov is None and not limited and not freq:
            self._clear_all(now, d)
            self.site_shortfall_kw = {}
        else:
            if gov is not None or freq:
                dem.capture(self.held, stations, self.commanded, now, self.t.stale_after_s)
            check_compliance(self, gov, stations, now, d)
            self._allocate(gov, limited, stations, now, d)
        self._report(gov, ended, stations, now, d)
        publish_statuses(self, stations, now, d, force_status, ended)
        if len(self.book.live) < self.book.max_live:
            self.refusing = False

    def _uncurtailed(self, stations: Mapping[str, StationRow], now: float) -> float:
        """An activating event's baseline: with no event active yet, the zone's load now;
        otherwise its stations' demands as the allocator holds them. A limited site counts
        at most its threshold: what the zone draws without the event, site limits included."""
        stale = self.t.stale_after_s
        dem.capture(self.held, stations, self.commanded, now, stale)
        if not self.sites:
            return dem.uncurtailed_kw(self.held, stations, now, stale)
        per_station = {
            station_id: max(sum(self.held.get(station_id, {}).values()),
                            row.load_kw(now, stale))
            for station_id, row in stations.items()
        }
        return self.site.capped_uncurtailed(per_station, stations, self.sites)

    def _target(self, station_id: str) -> float | None:
        prev = self.commanded.get(station_id)
        return None if prev is None else prev.target_kw

    def effective_load(self, station_id: str, row: StationRow, now: float) -> float:
        """A station's load as compliance and the cap see it (stale commanded stations count
        at the higher of their last load and their target)."""
        return dem.effective_load(row, self._target(station_id), now, self.t.stale_after_s)

    def _fixed(self, station_id: str, signal_id: str) -> bool:
        """Non-compliant, or uncontrollable for what limits it now: its load is taken as
        it is and the cap's rest goes to the others."""
        comp = self.compliance.get(station_id)
        if comp is not None and comp.noncompliant:
            return True
        prev = self.commanded.get(station_id)
        return (
            station_id in self.uncontrollable
            and prev is not None
            and prev.signal_id == signal_id
        )

    def _allocate(
        self, gov: DREvent | None, limited: dict[str, float],
        stations: Mapping[str, StationRow], now: float, d: Decisions,
    ) -> None:
        """One allocation for the zone cap (the lower of the governing event's and the
        frequency response's), its limited sites and the stations a restore still holds; one
        command per station whose limit or source changed; a CLEAR for a station no longer
        limited by anything."""
        t = self.t
        freq_cap, ceilings = self.freq.cap_kw(), self.freq.ceilings(now)
        dr_cap = None if gov is None else (gov.cap_kw or 0.0)
        # The lowest cap wins: the frequency response's when it is below the event's.
        by_freq = freq_cap is not None and (dr_cap is None or freq_cap < dr_cap)
        zone_cap = freq_cap if by_freq else dr_cap
        may_suspend = gov is not None and gov.may_suspend and not by_freq
        fixed, site_fixed, fixed_ids = 0.0, dict.fromkeys(limited, 0.0), set()
        demands: list[StationDemand] = []
        site_map: dict[str, str] = {}
        sources: dict[str, Source] = {}
        held_of: dict[str, Mapping[int, float]] = {}  # station_id -> its held demand
        made: dict[tuple[bool, str | None], Source] = {}  # one Source per kind, not per station
        commanded, compliance, uncontrollable = self.commanded, self.compliance, self.uncontrollable
        for station_id, row in sorted(stations.items()):
            site_id = site_of(row, self.sites)
            sited = site_id in limited
            ceiling = ceilings.get(station_id)
            if zone_cap is None and not sited and ceiling is None:
                continue
            freq_src = by_freq or (gov is None and ceiling is not None)
            kind = (freq_src, site_id if sited else None)
            src = made.get(kind)
            if src is None:
                src = made[kind] = (
                    self.freq.source(now, sited) if freq_src
                    else source_for(gov, kind[1], now, t.site_profile_valid_s))
            effective = self.effective_load(station_id, row, now)
            if (station_id in compliance or station_id in uncontrollable) \
                    and self._fixed(station_id, src.signal_id):
                fixed += effective
                fixed_ids.add(station_id)
                if sited:
                    site_fixed[site_id] += effective
                continue
            held = held_of[station_id] = self.site.demand_of(
                station_id, self.held.get(station_id, _NO_HELD))
            demand = dem.station_demand(row, held, may_suspend, effective, t, now)
            if ceiling is not None:  # restoring: held where it was until its release
                demand = replace(demand, ceiling_kw=min(demand.ceiling_kw, ceiling))
            if demand.demand_kw > 0.0 or (
                    (zone_cap is not None or ceiling is not None)
                    and station_id in self.commanded):
                demands.append(demand)
                sources[station_id] = src
                if sited:
                    site_map[station_id] = site_id
        since = (gov.activated_at if gov is not None else self.site.limited_since()) or now
        nested = allocate_nested(
            None if zone_cap is None else max(0.0, zone_cap - fixed), demands,
            {s: max(0.0, kw - site_fixed[s]) for s, kw in limited.items()}, site_map,
            rotation=rotation_index(now, since, t.suspend_rotation_s),
            dc_min_kw=t.dc_min_kw, ac_min_current_a=t.ac_min_current_a,
        )
        alloc = nested.allocation
        self.shortfall_kw = alloc.shortfall_kw if gov is not None else 0.0
        self.site_shortfall_kw = nested.site_shortfall_kw
        connectors, append = alloc.connectors, d.commands.append
        for station_id, kw in sorted(alloc.targets.items()):  # a station each: locals above
            target = round(kw, 3)
            limits = connectors[station_id]
            src = sources[station_id]
            suspended = suspended_of(limits)
            if not needs_limit(commanded.get(station_id), src, target, suspended, now, t):
                continue
            held_kw = sum(held_of[station_id].values())
            cmd = limit_command(self.zone_id, src, stations[station_id], target,
                                held_kw - target, limits, self._next_seq(station_id), now)
            append(cmd)
            commanded[station_id] = commanded_from(cmd, suspended)
            uncontrollable.pop(station_id, None)  # a new SET: a fresh chance
            comp = compliance.get(station_id)
            if comp is None:
                compliance[station_id] = StationCompliance(target, now)
            else:
                comp.retarget(target, now)
        for station_id in sorted(self.commanded):
            if station_id in stations and station_id not in alloc.targets \
                    and station_id not in fixed_ids:
                self._clear(station_id, now, d)

    def _clear(self, station_id: str, now: float, d: Decisions) -> None:
        """CLEAR exactly the profile the station was last given (if any)."""
        prev = self.commanded.pop(station_id, None)
        self.compliance.pop(station_id, None)
        self.uncontrollable.pop(station_id, None)
        if prev is not None:
            d.commands.append(
                clear_command(self.zone_id, station_id, prev, self._next_seq(station_id), now)
            )

    def _next_seq(self, station_id: str) -> int:
        seq = self.seq.get(station_id, 0) + 1
        self.seq[station_id] = seq
        return seq

    def _clear_all(self, now: float, d: Decisions) -> None:
        for station_id, prev in sorted(self.commanded.items()):
            d.commands.append(
                clear_command(self.zone_id, station_id, prev, self._next_seq(station_id), now)
            )
        self.commanded.clear()
        self.compliance.clear()
        self.uncontrollable.clear()

    # -- reports ----------------------------------------------------------------------------

    def _report(
        self, gov: DREvent | None, ended: list[DREvent], stations: Mapping[str, StationRow],
        now: float, d: Decisions,
    ) -> None:
        """One report for each event that ended; feed every active event's accumulator."""
        for ev in ended:
            d.reports.append(reporting.finish(self.reports, ev, self.zone_id, now))
        active = self.book.active()
        if active:
            sample = reporting.zone_sample(
                gov, stations, self.commanded, self.compliance, self.uncontrollable,
                self.shortfall_kw, self.t, now, self.site.held_back(self.sites),
            )
            reporting.observe(self.reports, active, sample, self.t, now)

    # -- status -----------------------------------------------------------------------------

    def status(self, ev: DREvent, current_kw: float, now: float) -> dict:
        gov = self.book.governing()
        governing = gov is not None and gov.signal_id == ev.signal_id
        noncompliant = sum(1 for c in self.compliance.values() if c.noncompliant)
        return status_body(
            self.zone_id, ev, current_kw, governing, self.shortfall_kw, len(self.commanded),
            noncompliant, now,
        )

    def view(self, now: float) -> dict:
        """For the JSON views and gauges: the governing cap, the events as they stand and the
        frequency response."""
        return {**controller_view(self), "frequency": self.freq.view(now)}

    def site_view(self, stations: Mapping[str, StationRow], now: float) -> dict[str, dict]:
        """Each of the zone's sites: load, limit, headroom, which stations are limited."""
        targets = {s: c.target_kw for s, c in self.commanded.items()}
        views = self.site.view(self.sites, stations, targets, now)
        for site_id, v in views.items():
            v["shortfall_kw"] = round(self.site_shortfall_kw.get(site_id, 0.0), 3)
        return views

    def _refusal(self, signal: DRSignal) -> RefusedSignal:
        first = not self.refusing
        self.refusing = True
        return refusal(self.zone_id, signal.signal_id, len(self.book.live), self.book.max_live,
                       REFUSED, first)

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain data, the layout documented in `evgrid.core.control.state`."""
        return state.controller_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, tunables: Tunables) -> ZoneController:
        return state.controller_from_dict(cls(d["zone_id"], tunables), d)
