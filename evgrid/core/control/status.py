"""Status and compliance reporting: the `grid.dr_status` and `alerts.dr.compliance` bodies.

A status is published when an event changes state and whenever one of its figures moves more
than the dead band, never once per tick for nothing: `StatusMemory` holds what was last
published per live event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass
from itertools import islice
from typing import TYPE_CHECKING

from evgrid.core.compliance import COMPLIANT, StationCompliance
from evgrid.core.lifecycle import ACTIVE, SCHEDULED, DREvent
from evgrid.core.types import StationRow, Tunables

if TYPE_CHECKING:
    from evgrid.core.control.controller import ZoneController
    from evgrid.core.control.decisions import Decisions


@dataclass(frozen=True, slots=True)
class StatusFigures:
    """What a status message says that is worth re-publishing when it moves."""

    state: str
    current_kw: float
    shortfall_kw: float
    stations_commanded: int
    stations_noncompliant: int
    cap_kw: float | None
    end_ts: float

    def moved(self, other: StatusFigures, band_kw: float) -> bool:
        for a, b in zip(astuple(self), astuple(other), strict=True):
            if isinstance(a, float) and isinstance(b, float):
                if abs(a - b) > band_kw:
                    return True
            elif a != b:
                return True
        return False

    def to_list(self) -> list:
        return list(astuple(self))

    @classmethod
    def from_list(cls, items: list) -> StatusFigures:
        return cls(*items)


def status_body(
    zone_id: str, ev: DREvent, current_kw: float, governing: bool, shortfall_kw: float,
    commanded: int, noncompliant: int, now: float,
) -> dict:
    """One `grid.dr_status` body (times in epoch seconds; the edge formats them)."""
    baseline = ev.baseline_kw
    cap = ev.cap_kw
    return {
        "signal_id": ev.signal_id,
        "zone_id": zone_id,
        "state": ev.state,
        "signal_type": ev.signal.signal_type,
        "priority": ev.signal.priority,
        "start_ts": ev.signal.start_ts,
        "end_ts": ev.signal.end_ts,
        "baseline_kw": None if baseline is None else round(baseline, 3),
        "cap_kw": None if cap is None else round(cap, 3),
        "current_kw": round(current_kw, 3),
        "achieved_reduction_kw": (
            0.0 if baseline is None or ev.state == SCHEDULED
            else round(baseline - current_kw, 3)
        ),
        "shortfall_kw": round(shortfall_kw, 3) if governing else 0.0,
        "stations_commanded": commanded if governing else 0,
        "stations_noncompliant": noncompliant if governing else 0,
        "updated_ts": now,
    }


def figures_of(status: dict) -> StatusFigures:
    return StatusFigures(
        state=status["state"],
        current_kw=status["current_kw"],
        shortfall_kw=status["shortfall_kw"],
        stations_commanded=status["stations_commanded"],
        stations_noncompliant=status["stations_noncompliant"],
        cap_kw=status["cap_kw"],
        end_ts=status["end_ts"],
    )


def compliance_body(
    zone_id: str, signal_id: str, station_id: str, change: str, comp: StationCompliance,
    load_kw: float, t: Tunables, now: float,
) -> dict:
    """One `alerts.dr.compliance` body: a station missed its target past the grace, or
    complies again."""
    return {
        "state": change,
        "station_id": station_id,
        "zone_id": zone_id,
        "signal_id": signal_id,
        "target_power_kw": comp.target_kw,
        "measured_kw": round(load_kw, 3),
        "tolerance_kw": round(
            comp.tolerance_kw(t.compliance_tolerance_pct, t.compliance_tolerance_kw), 3
        ),
        "since": comp.noncompliant_since if change != COMPLIANT else now,
        "detected_at": now,
    }


def controller_view(ctl: ZoneController) -> dict:
    """A zone controller for the JSON views and gauges: the governing cap and the events as
    they stand (live ones, then the most recently ended, at most `max_events_per_zone`)."""
    book = ctl.book
    gov = book.governing()
    recent = list(islice(reversed(book.ended.values()), book.max_live))[::-1]
    return {
        "cap_kw": gov.cap_kw if gov else None,
        "governing_signal_id": gov.signal_id if gov else None,
        "shortfall_kw": ctl.shortfall_kw if gov else 0.0,
        "active_events": len(book.active()),
        "stations_commanded": len(ctl.commanded),
        "stations_noncompliant": sum(1 for c in ctl.compliance.values() if c.noncompliant),
        "stations_uncontrollable": len(ctl.uncontrollable),
        "sites_limited": sorted(ctl.site.limited(ctl.sites)),
        "events": [
            {
                "signal_id": e.signal_id,
                "state": e.state,
                "signal_type": e.signal.signal_type,
                "baseline_kw": e.baseline_kw,
                "cap_kw": e.cap_kw,
                "start_ts": e.signal.start_ts,
                "end_ts": e.signal.end_ts,
                "activated_at": e.activated_at,
                "ended_at": e.ended_at,
            }
            for e in book.ordered() + recent
        ],
    }


def check_compliance(
    ctl: ZoneController, gov: DREvent | None, stations: Mapping[str, StationRow], now: float,
    d: Decisions,
) -> None:
    """Each commanded station's load against its target: an alert when it misses it past the
    grace, and when it complies again."""
    t = ctl.t
    for station_id, comp in sorted(ctl.compliance.items()):
        row = stations.get(station_id)
        prev = ctl.commanded.get(station_id)
        if row is None or prev is None:
            continue
        load = ctl.effective_load(station_id, row, now)
        change = comp.evaluate(
            load, now, t.compliance_tolerance_pct, t.compliance_tolerance_kw,
            t.compliance_grace_s,
        )
        if change is not None:
            d.compliance.append(
                compliance_body(
                    ctl.zone_id, gov.signal_id if gov else prev.signal_id, station_id,
                    change, comp, load, t, now,
                )
            )


def publish_statuses(
    ctl: ZoneController, stations: Mapping[str, StationRow], now: float, d: Decisions,
    force: set[str], ended: list[DREvent],
) -> None:
    """A status for each event that changed state (`force`) or whose figures moved more than
    the dead band; nothing for an event that stands as it stood."""
    current = None
    for ev in ctl.book.ordered() + ended:
        signal_id = ev.signal_id
        if ev.state != ACTIVE and signal_id not in force:
            continue
        if current is None:
            current = sum(ctl.effective_load(s, row, now) for s, row in stations.items())
        status = ctl.status(ev, current, now)
        figures = figures_of(status)
        last = ctl.published.get(signal_id)
        if signal_id not in force and last is not None and not last.moved(
            figures, ctl.t.dead_band_kw
        ):
            continue
        ctl.published[signal_id] = figures
        d.statuses.append(status)
    for signal_id in [s for s in ctl.published if s not in ctl.book.live]:
        del ctl.published[signal_id]
