"""Event-report feeding: the zone's sample at each step, and one report per ended event.

The accumulators themselves live in `evgrid.core.reports`; this module only builds the one
`ZoneSample` a step shares between every active event and hands ended events their report.
"""

from __future__ import annotations

from collections.abc import Mapping

from evgrid.core.compliance import StationCompliance
from evgrid.core.control.commands import Commanded
from evgrid.core.lifecycle import DREvent
from evgrid.core.reports import EventReport, StationSample, ZoneSample, build_report
from evgrid.core.types import StationRow, Tunables


def zone_sample(
    gov: DREvent | None, stations: Mapping[str, StationRow], commanded: Mapping[str, Commanded],
    compliance: Mapping[str, StationCompliance], uncontrollable: Mapping[str, float],
    shortfall_kw: float, t: Tunables, now: float,
    held_back: Mapping[str, float] | None = None,
) -> ZoneSample:
    """Station loads (a stale connector counts 0 kW)."""
    per = {}
    for station_id, row in stations.items():
        prev = commanded.get(station_id)
        comp = compliance.get(station_id)
        per[station_id] = StationSample(
            load_kw=row.load_kw(now, t.stale_after_s),
            target_kw=None if prev is None else prev.target_kw,
            noncompliant=comp is not None and comp.noncompliant,
            uncontrollable=station_id in uncontrollable,
        )
    return ZoneSample(
        cap_in_force_kw=None if gov is None else gov.cap_kw,
        governing_signal_id=None if gov is None else gov.signal_id,
        shortfall_kw=shortfall_kw,
        stations=per,
        site_limited_kw=sum((held_back or {}).values()),
        sites_limited=tuple(sorted(held_back or ())),
    )


def observe(
    reports: dict[str, EventReport], active: list[DREvent], sample: ZoneSample, t: Tunables,
    now: float,
) -> None:
    """Feed every active event's accumulator (started at its first step as active). The zone
    reaches an event's cap within the compliance tolerance, applied to the zone."""
    for ev in active:
        acc = reports.get(ev.signal_id)
        if acc is None:
            acc = reports[ev.signal_id] = EventReport.start(ev, now)
        cap = ev.cap_kw or 0.0
        tolerance = max(cap * t.compliance_tolerance_pct / 100.0, t.compliance_tolerance_kw)
        acc.observe(now, cap, tolerance, sample)


def finish(reports: dict[str, EventReport], ev: DREvent, zone_id: str, now: float) -> dict:
    """The ended event's one report (zeros for an event that never became active)."""
    acc = reports.pop(ev.signal_id, None)
    if acc is None:
        return build_report(ev, zone_id, None, now)
    return acc.finish(ev, zone_id, now)
