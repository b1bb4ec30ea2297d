"""Everything DR for one zone: lifecycle, allocation, commands, compliance, status.

Pure: the zone agent feeds it signals, the zone's stations and the time, and publishes the
`Decisions` it returns. Its whole state round-trips through `to_dict`, so a worker that crashed
mid-event makes the same decisions, with the same command ids, after it restores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from evgrid.core.allocator import (
    ConnectorDemand,
    ConnectorLimit,
    StationDemand,
    ac_floor_kw,
    allocate,
)
from evgrid.core.compliance import COMPLIANT, StationCompliance
from evgrid.core.lifecycle import (
    ACTIVE,
    IGNORED,
    SCHEDULED,
    UNKNOWN,
    DREvent,
    DRSignal,
    EventBook,
)
from evgrid.core.types import AC_TYPES, StationRow, Tunables, live_power_kw

#: While an event is active the zone is re-evaluated this often (new sessions, compliance).
REALLOCATE_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Command:
    station_id: str
    zone_id: str
    action: str  # SET | CLEAR
    target_power_kw: float | None
    station_shed_kw: float
    signal_id: str
    priority: int
    dr_end_ts: float
    command_ts: float
    connectors: tuple[ConnectorLimit, ...]
    profile_id: int
    profile_mode: str
    stack_level: int
    seq: int
    command_id: str
    reason: str = "DR"
    # For a CLEAR in per-connector mode: the connectors whose profiles to clear.
    connector_ids: tuple[int, ...] = ()


@dataclass(slots=True)
class Decisions:
    commands: list[Command] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    compliance: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.commands or self.statuses or self.compliance)


def command_id(zone_id: str, signal_id: str, station_id: str, seq: int, action: str,
               target: float | None) -> str:
    """Same decision → same id (a gateway drops duplicates after a crash and replay);
    a later decision, even with the same target, gets a new id through `seq`."""
    t = "-" if target is None else f"{target:.1f}"
    text = f"{zone_id}\x00{signal_id}\x00{station_id}\x00{seq}\x00{action}\x00{t}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def profile_id_for(signal_id: str, station_id: str) -> int:
    from evgrid.profiles import profile_id_for as pid

    return pid(signal_id, station_id)


class ZoneController:
    def __init__(self, zone_id: str, tunables: Tunables) -> None:
        self.zone_id = zone_id
        self.t = tunables
        self.book = EventBook()
        # station -> what it was last told (SET): target, signal, profile, connectors
        self.commanded: dict[str, dict] = {}
        self.compliance: dict[str, StationCompliance] = {}
        self.seq: dict[str, int] = {}
        self.shortfall_kw = 0.0
        self.last_step = 0.0
        self.reported: dict[str, list] = {}  # signal_id -> figures last published

    # -- inputs -----------------------------------------------------------------------------

    def on_signal(
        self, signal: DRSignal, stations: Mapping[str, StationRow], now: float
    ) -> Decisions:
        d = Decisions()
        outcome = self.book.receive(signal, now)
        if outcome not in (IGNORED, UNKNOWN):
            ev = self.book.events[signal.signal_id]
            self._step(stations, now, d, force_status={ev.signal.signal_id})
        return d

    def on_tick(self, stations: Mapping[str, StationRow], now: float) -> Decisions:
        d = Decisions()
        self._step(stations, now, d, force_status=set())
        self.book.purge(now, self.t.event_retention_s)
        return d

    def next_deadline(self, now: float) -> float | None:
        due = self.book.next_deadline()
        if self.book.active() or self.commanded:
            periodic = self.last_step + REALLOCATE_EVERY_S
            due = periodic if due is None else min(due, periodic)
        return due

    def active_events(self) -> list[DREvent]:
        return self.book.active()

    # -- the step ---------------------------------------------------------------------------

    def _step(
        self, stations: Mapping[str, StationRow], now: float, d: Decisions,
        force_status: set[str],
    ) -> None:
        self.last_step = now
        changed = self.book.advance(now, lambda: self._baseline(stations, now))
        force_status |= {ev.signal.signal_id for ev in changed}
        gov = self.book.governing()
        if gov is None:
            self._clear_all(now, d)
            self.shortfall_kw = 0.0
        else:
            self._check_compliance(gov, stations, now, d)
            self._allocate(gov, stations, now, d)
        self._statuses(stations, now, d, force_status)

    def _baseline(
        self, stations: Mapping[str, StationRow], now: float
    ) -> tuple[float, dict[str, dict[int, float]]]:
        per: dict[str, dict[int, float]] = {}
        for sid, row in stations.items():
            conns = {
                cid: live_power_kw(c, now, self.t.stale_after_s)
                for cid, c in row.connectors.items()
            }
            if any(kw > 0 for kw in conns.values()):
                per[sid] = conns
        return sum(sum(c.values()) for c in per.values()), per

    def effective_load(self, sid: str, row: StationRow, now: float) -> float:
        """Live load; a commanded station whose data went stale counts at the higher of its
        last load and its target (it may still be drawing; we cannot see it)."""
        live = row.load_kw(now, self.t.stale_after_s)
        cmd = self.commanded.get(sid)
        if cmd is not None and row.connectors and live == 0.0:
            fresh = any(
                now - c.event_ts <= self.t.stale_after_s for c in row.connectors.values()
            )
            if not fresh:
                last = sum(c.power_kw for c in row.connectors.values())
                return max(last, cmd["target"])
        return live

    def _demand(self, ev: DREvent, sid: str, row: StationRow, now: float) -> StationDemand:
        t = self.t
        base = ev.station_baseline.get(sid, {})
        conns = []
        for cid, c in sorted(row.connectors.items()):
            live = live_power_kw(c, now, t.stale_after_s)
            active = c.session_active and live > 0.0
            if ev.may_suspend or not active:
                floor = 0.0
            elif c.connector_type in AC_TYPES:
                floor = ac_floor_kw(t.ac_phases, t.ac_voltage_v, t.ac_min_current_a)
            else:
                floor = t.dc_min_kw
            cap = (row.config.connector_max_kw or {}).get(c.connector_type, float("inf"))
            conns.append(
                ConnectorDemand(
                    connector_id=cid,
                    connector_type=c.connector_type,
                    demand_kw=max(base.get(cid, 0.0), live),
                    floor_kw=floor,
                    ceiling_kw=cap,
                    phases=t.ac_phases,
                    voltage_v=t.ac_voltage_v,
                )
            )
        demand = max(sum(base.values()), self.effective_load(sid, row, now))
        return StationDemand(
            station_id=sid,
            demand_kw=demand,
            floor_kw=sum(c.floor_kw for c in conns),
            ceiling_kw=row.config.ceiling_kw([c.connector_type for c in conns]),
            connectors=tuple(conns),
        )

    def _allocate(
        self, ev: DREvent, stations: Mapping[str, StationRow], now: float, d: Decisions
    ) -> None:
        fixed = 0.0
        demands = []
        for sid, row in sorted(stations.items()):
            comp = self.compliance.get(sid)
            if comp is not None and comp.noncompliant:
                fixed += self.effective_load(sid, row, now)  # treated as fixed
                continue
            demand = self._demand(ev, sid, row, now)
            if demand.demand_kw > 0.0 or sid in self.commanded:
                demands.append(demand)
        cap = max(0.0, (ev.cap_kw or 0.0) - fixed)
        alloc = allocate(cap, demands)
        self.shortfall_kw = alloc.shortfall_kw
        for dem in demands:
            sid = dem.station_id
            target = round(alloc.targets[sid], 3)
            prev = self.commanded.get(sid)
            if (
                prev is not None
                and prev["signal_id"] == ev.signal.signal_id
                and abs(prev["target"] - target) <= self.t.dead_band_kw
            ):
                continue
            row = stations[sid]
            base = sum(ev.station_baseline.get(sid, {}).values())
            d.commands.append(
                self._command(ev, row, "SET", target, max(0.0, base - target),
                              alloc.connectors[sid], now)
            )
            self.commanded[sid] = {
                "target": target,
                "signal_id": ev.signal.signal_id,
                "priority": ev.signal.priority,
                "end": ev.signal.end_ts,
                "profile_id": profile_id_for(ev.signal.signal_id, sid),
                "mode": row.config.profile_mode,
                "stack": row.config.stack_level,
                "connectors": [c.connector_id for c in alloc.connectors[sid]],
            }
            comp = self.compliance.get(sid)
            if comp is None:
                self.compliance[sid] = StationCompliance(target, now)
            else:
                comp.retarget(target, now)

    def _command(
        self, ev: DREvent, row: StationRow, action: str, target: float | None, shed: float,
        connectors: tuple[ConnectorLimit, ...], now: float,
    ) -> Command:
        sid = row.station_id
        seq = self.seq.get(sid, 0) + 1
        self.seq[sid] = seq
        return Command(
            station_id=sid,
            zone_id=self.zone_id,
            action=action,
            target_power_kw=target,
            station_shed_kw=round(shed, 3),
            signal_id=ev.signal.signal_id,
            priority=ev.signal.priority,
            dr_end_ts=ev.signal.end_ts,
            command_ts=now,
            connectors=connectors,
            profile_id=profile_id_for(ev.signal.signal_id, sid),
            profile_mode=row.config.profile_mode,
            stack_level=row.config.stack_level,
            seq=seq,
            command_id=command_id(self.zone_id, ev.signal.signal_id, sid, seq, action, target),
        )

    def _clear_all(self, now: float, d: Decisions) -> None:
        for sid, prev in sorted(self.commanded.items()):
            seq = self.seq.get(sid, 0) + 1
            self.seq[sid] = seq
            d.commands.append(
                Command(
                    station_id=sid,
                    zone_id=self.zone_id,
                    action="CLEAR",
                    target_power_kw=None,
                    station_shed_kw=0.0,
                    signal_id=prev["signal_id"],
                    priority=prev["priority"],
                    dr_end_ts=prev["end"],
                    command_ts=now,
                    connectors=(),
                    profile_id=prev["profile_id"],
                    profile_mode=prev["mode"],
                    stack_level=prev["stack"],
                    seq=seq,
                    command_id=command_id(
                        self.zone_id, prev["signal_id"], sid, seq, "CLEAR", None
                    ),
                    connector_ids=tuple(prev["connectors"]),
                )
            )
        self.commanded.clear()
        self.compliance.clear()

    def _check_compliance(
        self, ev: DREvent, stations: Mapping[str, StationRow], now: float, d: Decisions
    ) -> None:
        t = self.t
        for sid, comp in sorted(self.compliance.items()):
            row = stations.get(sid)
            if row is None:
                continue
            load = self.effective_load(sid, row, now)
            change = comp.evaluate(
                load, now, t.compliance_tolerance_pct, t.compliance_tolerance_kw,
                t.compliance_grace_s,
            )
            if change is None:
                continue
            d.compliance.append(
                {
                    "state": change,
                    "station_id": sid,
                    "zone_id": self.zone_id,
                    "signal_id": ev.signal.signal_id,
                    "target_power_kw": comp.target_kw,
                    "measured_kw": round(load, 3),
                    "tolerance_kw": round(
                        comp.tolerance_kw(t.compliance_tolerance_pct, t.compliance_tolerance_kw), 3
                    ),
                    "since": comp.noncompliant_since if change != COMPLIANT else now,
                    "detected_at": now,
                }
            )

    # -- status -----------------------------------------------------------------------------

    def _statuses(
        self, stations: Mapping[str, StationRow], now: float, d: Decisions, force: set[str]
    ) -> None:
        current = None
        for ev in self.book.ordered():
            sid = ev.signal.signal_id
            if ev.state != ACTIVE and sid not in force:
                continue
            if current is None:
                current = sum(
                    self.effective_load(s, row, now) for s, row in stations.items()
                )
            status = self.status(ev, current, now)
            figures = [
                status["state"], status["current_kw"], status["shortfall_kw"],
                status["stations_commanded"], status["stations_noncompliant"], status["cap_kw"],
                status["end_ts"],
            ]
            last = self.reported.get(sid)
            if sid not in force and last is not None and not self._moved(last, figures):
                continue
            self.reported[sid] = figures
            d.statuses.append(status)
        for sid in [s for s in self.reported if s not in self.book.events]:
            del self.reported[sid]

    def _moved(self, last: list, now: list) -> bool:
        band = self.t.dead_band_kw
        for a, b in zip(last, now, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                if abs(a - b) > band:
                    return True
            elif a != b:
                return True
        return False

    def status(self, ev: DREvent, current_kw: float, now: float) -> dict:
        gov = self.book.governing()
        governing = gov is not None and gov.signal.signal_id == ev.signal.signal_id
        baseline = ev.baseline_kw
        return {
            "signal_id": ev.signal.signal_id,
            "zone_id": self.zone_id,
            "state": ev.state,
            "signal_type": ev.signal.signal_type,
            "priority": ev.signal.priority,
            "start_ts": ev.signal.start_ts,
            "end_ts": ev.signal.end_ts,
            "baseline_kw": None if baseline is None else round(baseline, 3),
            "cap_kw": None if ev.cap_kw is None else round(ev.cap_kw, 3),
            "current_kw": round(current_kw, 3),
            "achieved_reduction_kw": (
                0.0 if baseline is None or ev.state == SCHEDULED
                else round(baseline - current_kw, 3)
            ),
            "shortfall_kw": round(self.shortfall_kw, 3) if governing else 0.0,
            "stations_commanded": len(self.commanded) if governing else 0,
            "stations_noncompliant": (
                sum(1 for c in self.compliance.values() if c.noncompliant) if governing else 0
            ),
            "updated_ts": now,
        }

    def view(self, now: float) -> dict:
        """For the JSON views and gauges: the governing cap and the events as they stand."""
        gov = self.book.governing()
        return {
            "cap_kw": gov.cap_kw if gov else None,
            "governing_signal_id": gov.signal.signal_id if gov else None,
            "shortfall_kw": self.shortfall_kw if gov else 0.0,
            "active_events": len(self.book.active()),
            "stations_commanded": len(self.commanded),
            "stations_noncompliant": sum(1 for c in self.compliance.values() if c.noncompliant),
            "events": [
                {
                    "signal_id": e.signal.signal_id,
                    "state": e.state,
                    "signal_type": e.signal.signal_type,
                    "baseline_kw": e.baseline_kw,
                    "cap_kw": e.cap_kw,
                    "start_ts": e.signal.start_ts,
                    "end_ts": e.signal.end_ts,
                }
                for e in self.book.ordered()
            ],
        }

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "zone_id": self.zone_id,
            "events": self.book.to_dict(),
            "commanded": self.commanded,
            "compliance": {sid: c.to_dict() for sid, c in self.compliance.items()},
            "seq": self.seq,
            "shortfall": self.shortfall_kw,
            "last_step": self.last_step,
            "reported": self.reported,
        }

    @classmethod
    def from_dict(cls, d: dict, tunables: Tunables) -> ZoneController:
        c = cls(d["zone_id"], tunables)
        c.book = EventBook.from_dict(d["events"])
        c.commanded = d["commanded"]
        c.compliance = {sid: StationCompliance.from_dict(x) for sid, x in d["compliance"].items()}
        c.seq = d["seq"]
        c.shortfall_kw = d["shortfall"]
        c.last_step = d["last_step"]
        c.reported = d["reported"]
        return c
