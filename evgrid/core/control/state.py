"""The controller's persisted layout: plain lists, dicts, strings and numbers, every field named.

The state layer wraps this in its versioned codec; this module is the one place the layout is
written and read, so a change to it is a visible, reviewable change (bump the codec version).

```
{
  "zone_id": str,
  "events": {"live": [event, ...], "ended": [event, ...]},   # ended in the order they ended
      # event = {"signal": {signal_id, zone_id, signal_type, target_reduction_kw,
      #                     target_reduction_pct, cap_kw, start_ts, end_ts, priority,
      #                     received_ts},
      #          "state": SCHEDULED|ACTIVE|ENDED, "baseline_kw": float|null,
      #          "activated_at": float|null, "ended_at": float|null,
      #          "ended_by": "END"|"RESTORE"|null}
  "stations": [                                               # sorted by station_id
      {"station_id": str,
       "seq": int,                        # commands sent to it so far (command_id input)
       "commanded": {signal_id, priority, dr_end_ts, target_kw, profile_id, profile_mode,
                     stack_level, connector_ids: [int], command_id, commanded_at} | null,
       "compliance": {target_kw, commanded_at, over_since, noncompliant,
                      noncompliant_since} | null,
       "uncontrollable_since": float | null,
       "held_kw": [[connector_id, kw], ...] | null}           # uncurtailed demand
  ],
  "shortfall_kw": float,
  "last_step": float,
  "wake_at": float | null,
  "refusing": bool,                       # inside a too_many_events episode
  "published": [[signal_id, [state, current_kw, shortfall_kw, stations_commanded,
                             stations_noncompliant, cap_kw, end_ts]], ...],
  "reports": [[signal_id, report accumulator (evgrid.core.reports.EventReport.to_dict)]],
  "sites": {"limits": [[site_id, {limited, since, below_since, alarm}], ...],
            "held": [[station_id, [[connector_id, kw], ...]], ...]},  # absent: no sites
  "frequency": {"program": FrequencyProgram.to_dict(), "response": FrequencyResponse
                .to_dict(), "evidence": ActivationEvidence.to_dict() | null,
                "last_hz": float | null, "silent_alerted": bool,
                "nadir": [hz, ts] | null} | null               # null/absent: no program
}
```
Times are epoch seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evgrid.core.compliance import StationCompliance
from evgrid.core.control.commands import Commanded
from evgrid.core.control.status import StatusFigures
from evgrid.core.lifecycle import EventBook
from evgrid.core.reports import EventReport

if TYPE_CHECKING:
    from evgrid.core.control.controller import ZoneController


def controller_to_dict(c: ZoneController) -> dict:
    known = sorted(
        set(c.seq) | set(c.commanded) | set(c.compliance) | set(c.uncontrollable) | set(c.held)
    )
    stations = []
    for station_id in known:
        prev = c.commanded.get(station_id)
        comp = c.compliance.get(station_id)
        held = c.held.get(station_id)
        stations.append({
            "station_id": station_id,
            "seq": c.seq.get(station_id, 0),
            "commanded": None if prev is None else prev.to_dict(),
            "compliance": None if comp is None else comp.to_dict(),
            "uncontrollable_since": c.uncontrollable.get(station_id),
            "held_kw": None if held is None else [[k, kw] for k, kw in sorted(held.items())],
        })
    return {
        "zone_id": c.zone_id,
        "events": c.book.to_dict(),
        "stations": stations,
        "shortfall_kw": c.shortfall_kw,
        "last_step": c.last_step,
        "wake_at": c.wake_at,
        "refusing": c.refusing,
        "published": [[s, f.to_list()] for s, f in sorted(c.published.items())],
        "reports": [[s, r.to_dict()] for s, r in sorted(c.reports.items())],
        "sites": c.site.to_dict(),
        "frequency": c.freq.to_dict(),
    }


def controller_from_dict(c: ZoneController, d: dict) -> ZoneController:
    """Fill a fresh controller (built with its tunables) from `controller_to_dict` output."""
    c.book = EventBook.from_dict(d["events"], c.t.max_events_per_zone)
    for s in d["stations"]:
        station_id = s["station_id"]
        if s["seq"]:
            c.seq[station_id] = s["seq"]
        if s["commanded"] is not None:
            c.commanded[station_id] = Commanded.from_dict(s["commanded"])
        if s["compliance"] is not None:
            c.compliance[station_id] = StationCompliance.from_dict(s["compliance"])
        if s["uncontrollable_since"] is not None:
            c.uncontrollable[station_id] = s["uncontrollable_since"]
        if s["held_kw"] is not None:
            c.held[station_id] = {int(k): kw for k, kw in s["held_kw"]}
    c.shortfall_kw = d["shortfall_kw"]
    c.last_step = d["last_step"]
    c.wake_at = d["wake_at"]
    c.refusing = d["refusing"]
    c.published = {s: StatusFigures.from_list(f) for s, f in d["published"]}
    c.reports = {s: EventReport.from_dict(r) for s, r in d["reports"]}
    c.site.load(d.get("sites"))
    c.freq.load(d.get("frequency"))
    return c
