"""The settlement report of one DR event, accumulated step by step.

The controller feeds every active event's accumulator a `ZoneSample` on each step (signals,
ticks — at least once a second during an event — outcomes, station changes). Between two steps
each load, target and flag is held at the value of the earlier step (sample-and-hold), so the
integrals are exact for loads that are constant between steps, and the error for any other is
bounded by one step's change. Loads are the station loads (a stale connector counts
0 kW), so the zone's drawn energy is the sum of its stations' energies, and the delivered
reduction is exactly `baseline energy − drawn energy`.

All state is plain numbers in named fields (`to_dict` / `from_dict`), so a worker restarted
mid-event resumes the same accumulator and emits one complete report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from evgrid.core.lifecycle import DREvent

#: Per station, at most this many target changes are listed (the averages cover them all).
MAX_TARGETS_LISTED = 32
#: Likewise for the zone's caps in force.
MAX_CAPS_LISTED = 64


@dataclass(frozen=True, slots=True)
class StationSample:
    load_kw: float
    target_kw: float | None  # None: not commanded
    noncompliant: bool = False
    uncontrollable: bool = False


ZERO = StationSample(0.0, None)


@dataclass(frozen=True, slots=True)
class ZoneSample:
    """The zone at one step, built once and shared by every active event's report."""

    cap_in_force_kw: float | None
    governing_signal_id: str | None
    shortfall_kw: float
    stations: Mapping[str, StationSample]
    #: What limited sites hold back of their stations' demand: normal operation, never a
    #: DR event's delivery (the baseline already leaves it out).
    site_limited_kw: float = 0.0
    sites_limited: tuple[str, ...] = ()

    @property
    def load_kw(self) -> float:
        return sum(s.load_kw for s in self.stations.values())


@dataclass(slots=True)
class StationTally:
    energy_kwh: float = 0.0
    target_kwh: float = 0.0  # ∫ target dt over the commanded time
    commanded_s: float = 0.0
    noncompliant_s: float = 0.0
    uncontrollable_s: float = 0.0
    targets: list[list[float]] = field(default_factory=list)  # [from_ts, target_kw]
    last: StationSample = ZERO

    def integrate(self, dt: float) -> None:
        s = self.last
        self.energy_kwh += s.load_kw * dt / 3600.0
        if s.target_kw is not None:
            self.commanded_s += dt
            self.target_kwh += s.target_kw * dt / 3600.0
        if s.noncompliant:
            self.noncompliant_s += dt
        if s.uncontrollable:
            self.uncontrollable_s += dt

    def to_dict(self) -> dict:
        s = self.last
        return {
            "energy_kwh": self.energy_kwh,
            "target_kwh": self.target_kwh,
            "commanded_s": self.commanded_s,
            "noncompliant_s": self.noncompliant_s,
            "uncontrollable_s": self.uncontrollable_s,
            "targets": self.targets,
            "last": [s.load_kw, s.target_kw, s.noncompliant, s.uncontrollable],
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationTally:
        load, target, noncompliant, uncontrollable = d["last"]
        return cls(
            energy_kwh=d["energy_kwh"],
            target_kwh=d["target_kwh"],
            commanded_s=d["commanded_s"],
            noncompliant_s=d["noncompliant_s"],
            uncontrollable_s=d["uncontrollable_s"],
            targets=[list(x) for x in d["targets"]],
            last=StationSample(load, target, noncompliant, uncontrollable),
        )


@dataclass(slots=True)
class EventReport:
    """Accumulates one event from its activation to its end."""

    started_at: float
    baseline_kw: float
    last_ts: float
    last_load_kw: float = 0.0
    last_own_cap_kw: float = 0.0
    drawn_kwh: float = 0.0
    target_kwh: float = 0.0  # ∫ (baseline − own cap) dt: the reduction asked for
    reached_cap_at: float | None = None
    peak_overshoot_kw: float = 0.0
    max_shortfall_kw: float = 0.0
    caps: list[list] = field(default_factory=list)  # [from_ts, cap_kw, governing signal_id]
    stations: dict[str, StationTally] = field(default_factory=dict)
    last_site_limited_kw: float = 0.0
    site_limited_kwh: float = 0.0  # ∫ what site limits held back dt (not delivered by DR)
    sites_limited: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, ev: DREvent, now: float) -> EventReport:
        return cls(started_at=now, baseline_kw=ev.baseline_kw or 0.0, last_ts=now)

    def observe(self, now: float, own_cap_kw: float, tolerance_kw: float,
                sample: ZoneSample) -> None:
        """Integrate the held values up to `now`, then hold the new sample."""
        self._integrate(now)
        load = sample.load_kw
        self.last_load_kw, self.last_own_cap_kw = load, own_cap_kw
        self.last_site_limited_kw = sample.site_limited_kw
        for site_id in sample.sites_limited:
            if site_id not in self.sites_limited:
                self.sites_limited.append(site_id)
        if sample.cap_in_force_kw is not None:
            cap = [now, round(sample.cap_in_force_kw, 3), sample.governing_signal_id]
            moved = not self.caps or self.caps[-1][1:] != cap[1:]
            if moved and len(self.caps) < MAX_CAPS_LISTED:
                self.caps.append(cap)
        if self.reached_cap_at is None and load <= own_cap_kw + tolerance_kw:
            self.reached_cap_at = now
        if self.reached_cap_at is not None:
            self.peak_overshoot_kw = max(self.peak_overshoot_kw, load - own_cap_kw)
        self.max_shortfall_kw = max(self.max_shortfall_kw, sample.shortfall_kw)
        for station_id, tally in self.stations.items():
            if station_id not in sample.stations:
                tally.last = ZERO  # it left the zone: its draw is no longer the zone's
        for station_id, s in sample.stations.items():
            tally = self.stations.get(station_id)
            if tally is None:
                if s.load_kw <= 0.0 and s.target_kw is None:
                    continue  # idle and never commanded: not part of the event
                tally = self.stations[station_id] = StationTally()
            if s.target_kw is not None and (
                not tally.targets or tally.targets[-1][1] != s.target_kw
            ) and len(tally.targets) < MAX_TARGETS_LISTED:
                tally.targets.append([now, s.target_kw])
            tally.last = s

    def _integrate(self, now: float) -> None:
        dt = max(0.0, now - self.last_ts)
        self.last_ts = max(self.last_ts, now)
        if dt == 0.0:
            return
        self.drawn_kwh += self.last_load_kw * dt / 3600.0
        self.site_limited_kwh += self.last_site_limited_kw * dt / 3600.0
        self.target_kwh += max(0.0, self.baseline_kw - self.last_own_cap_kw) * dt / 3600.0
        for tally in self.stations.values():
            tally.integrate(dt)

    def finish(self, ev: DREvent, zone_id: str, now: float) -> dict:
        """The report, as plain data (times in epoch seconds)."""
        self._integrate(now)
        return build_report(ev, zone_id, self, now)

    def to_dict(self) -> dict:
        return {
            "started_at": self.started_at,
            "baseline_kw": self.baseline_kw,
            "last_ts": self.last_ts,
            "last_load_kw": self.last_load_kw,
            "last_own_cap_kw": self.last_own_cap_kw,
            "drawn_kwh": self.drawn_kwh,
            "target_kwh": self.target_kwh,
            "reached_cap_at": self.reached_cap_at,
            "peak_overshoot_kw": self.peak_overshoot_kw,
            "max_shortfall_kw": self.max_shortfall_kw,
            "caps": self.caps,
            "stations": [[station_id, t.to_dict()]
                         for station_id, t in sorted(self.stations.items())],
            "last_site_limited_kw": self.last_site_limited_kw,
            "site_limited_kwh": self.site_limited_kwh,
            "sites_limited": self.sites_limited,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EventReport:
        return cls(
            started_at=d["started_at"],
            baseline_kw=d["baseline_kw"],
            last_ts=d["last_ts"],
            last_load_kw=d["last_load_kw"],
            last_own_cap_kw=d["last_own_cap_kw"],
            drawn_kwh=d["drawn_kwh"],
            target_kwh=d["target_kwh"],
            reached_cap_at=d["reached_cap_at"],
            peak_overshoot_kw=d["peak_overshoot_kw"],
            max_shortfall_kw=d["max_shortfall_kw"],
            caps=[list(c) for c in d["caps"]],
            stations={station_id: StationTally.from_dict(t) for station_id, t in d["stations"]},
            last_site_limited_kw=d.get("last_site_limited_kw", 0.0),
            site_limited_kwh=d.get("site_limited_kwh", 0.0),
            sites_limited=list(d.get("sites_limited", ())),
        )


def report_id(zone_id: str, signal_id: str) -> str:
    """One report per event: the same id whoever computes it, so duplicates can be dropped."""
    return hashlib.blake2b(f"{zone_id}\x00{signal_id}".encode(), digest_size=16).hexdigest()


def _r(x: float) -> float:
    return round(x, 6)


def build_report(ev: DREvent, zone_id: str, acc: EventReport | None, now: float) -> dict:
    """The report of an ended event; `acc` is None for one that never became active."""
    sig = ev.signal
    duration = 0.0 if acc is None else max(0.0, now - acc.started_at)
    baseline = ev.baseline_kw
    baseline_kwh = (baseline or 0.0) * duration / 3600.0
    drawn = 0.0 if acc is None else acc.drawn_kwh
    # From the figures as published, so `delivered = baseline − drawn` holds on the report
    # itself (rounding each on its own left them 1e-6 apart: a settlement would not add up).
    delivered = _r(baseline_kwh) - _r(drawn)
    target_kwh = 0.0 if acc is None else acc.target_kwh
    stations = []
    if acc is not None:
        for station_id, t in sorted(acc.stations.items()):
            stations.append({
                "station_id": station_id,
                "targets": [{"from_ts": ts, "target_kw": kw} for ts, kw in t.targets],
                "average_target_kw": (
                    _r(t.target_kwh * 3600.0 / t.commanded_s) if t.commanded_s > 0 else None
                ),
                "measured_avg_kw": _r(t.energy_kwh * 3600.0 / duration) if duration > 0 else 0.0,
                "energy_kwh": _r(t.energy_kwh),
                "seconds_commanded": _r(t.commanded_s),
                "seconds_noncompliant": _r(t.noncompliant_s),
                "seconds_uncontrollable": _r(t.uncontrollable_s),
            })
    return {
        "report_id": report_id(zone_id, sig.signal_id),
        "signal_id": sig.signal_id,
        "zone_id": zone_id,
        "signal_type": sig.signal_type,
        "priority": sig.priority,
        "target_reduction_kw": sig.target_reduction_kw,
        "target_reduction_pct": sig.target_reduction_pct,
        "target_cap_kw": sig.cap_kw,
        "baseline_kw": None if baseline is None else _r(baseline),
        "cap_kw": None if ev.cap_kw is None else _r(ev.cap_kw),
        "caps": (
            [] if acc is None
            else [{"from_ts": ts, "cap_kw": kw, "signal_id": s} for ts, kw, s in acc.caps]
        ),
        "planned_start_ts": sig.start_ts,
        "planned_end_ts": sig.end_ts,
        "actual_start_ts": ev.activated_at,
        "actual_end_ts": ev.ended_at,
        "ended_by": ev.ended_by,
        "duration_s": _r(duration),
        "baseline_energy_kwh": _r(baseline_kwh),
        "drawn_energy_kwh": _r(drawn),
        "delivered_kwh": _r(delivered),
        "target_kwh": _r(target_kwh),
        "delivered_pct_of_target": (
            _r(100.0 * delivered / target_kwh) if target_kwh > 1e-9 else None
        ),
        "time_to_cap_s": (
            None if acc is None or acc.reached_cap_at is None
            else _r(acc.reached_cap_at - acc.started_at)
        ),
        "peak_overshoot_kw": 0.0 if acc is None else _r(max(0.0, acc.peak_overshoot_kw)),
        "max_shortfall_kw": 0.0 if acc is None else _r(acc.max_shortfall_kw),
        # Site limits are normal operation: what they held back is reported apart and is
        # not part of delivered_kwh (the baseline counts limited sites at their limit).
        "site_limited_kwh": 0.0 if acc is None else _r(acc.site_limited_kwh),
        "sites_limited": [] if acc is None else sorted(acc.sites_limited),
        "stations": stations,
        "report_ts": now,
    }
