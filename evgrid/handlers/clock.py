"""The zone clock: DR transitions and compliance checks happen on time even when no message
arrives, and the gauges stay current.

Timers run on every worker, and Faust standby replicas put other workers' zones in the local
store, so the clock acts only on zones whose partition this worker *actively* owns. It acts
directly (on the same loop as the agents, between their messages), not through Kafka: a
transition never waits behind queued station loads.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

import faust

from evgrid import codec, metrics
from evgrid.core.control.frequency import flexibility, governing_cap
from evgrid.handlers.signals import DRSignals
from evgrid.handlers.zone import ZoneStage
from evgrid.models import zone_load_report
from evgrid.models.frequency import Flexibility
from evgrid.settings import WorkerSettings
from evgrid.state.zones import ZoneEntry
from evgrid.timeutil import from_epoch

#: How often the clock looks for due zones: transitions are at most this much late.
RESOLUTION_S = 0.2
#: The longest one turn of the clock steps zones: hundreds of zones due at once (a frequency
#: activation re-evaluates them every second) must not hold the loop for a second.
STEP_BUDGET_S = 0.05
#: The longest one turn of the clock spends on gauges and zone loads (a tenth of a core at
#: most, with a turn every RESOLUTION_S).
GAUGES_BUDGET_S = 0.02
HISTORY_POINTS = 180  # 15 minutes at the default 5 s step


class ZoneClock:
    def __init__(self, app: faust.App, settings: WorkerSettings, stage: ZoneStage,
                 dr: DRSignals) -> None:
        self.app = app
        self.settings = settings
        self.stage = stage
        self.dr = dr
        self._last_gauges = 0.0
        #: The zones the gauges' sweep has yet to visit (popped from the end), and the
        #: active events and non-compliant stations counted so far.
        self._sweep: list[ZoneEntry] = []
        self._sweep_totals = [0, 0]
        #: zone_id -> when its history point and zone load were last taken.
        self._sampled: dict[str, float] = {}
        #: Per zone: (ts, load, cap, capacity) every `history_step_s`, for the dashboard.
        self.history: dict[str, deque[tuple[float, float, float | None, float]]] = {}

    def owned_partitions(self) -> set[int]:
        """The zones' partitions this worker actively owns: those of the assignment topic
        Faust gives it (every consumer of the worker follows the same)."""
        topic = self.settings.internal_topics.assignment
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def run_once(self, now: float | None = None) -> int:
        """Step every owned zone that is due; returns how many were stepped. A turn during
        urgent control work (a frequency activation under way) is skipped: the activation
        steps its zones itself, and the due ones wait at most until it is done. The turn
        gives the loop a turn after each zone's step, so a DR signal, a measurement or a
        command's ack that arrives meanwhile waits one zone's step, not the whole turn."""
        if self.app.rebalancing or self.stage.out.busy:
            return 0
        now = time.time() if now is None else now
        owned = self.owned_partitions()
        due = []
        for zone in self.stage.zones.in_partitions(owned):
            if not zone.warm(now):
                continue
            if zone.pending_signals:
                self.dr.apply_pending(zone, now)
            deadline = zone.controller.next_deadline(now)
            if deadline is not None and deadline <= now:
                due.append((deadline, zone.zone_id, zone))
        # The most overdue first, for at most STEP_BUDGET_S: the rest stay due for the next
        # turn, and signals, measurements and readings get the loop in between.
        due.sort(key=lambda d: (d[0], d[1]))
        started = time.perf_counter()
        stepped = 0
        for _deadline, zone_id, zone in due:
            if stepped and time.perf_counter() - started >= STEP_BUDGET_S:
                metrics.ZONE_STEPS_DEFERRED.inc(len(due) - stepped)
                break
            if self.stage.zones.zones.get(zone_id) is not zone:
                continue  # gone while the loop had its turn (revoked, or reloaded)
            deadline = zone.controller.next_deadline(now)
            if deadline is None or deadline > now:
                continue  # a signal stepped it meanwhile
            self.stage.step(zone, now)
            stepped += 1
            await asyncio.sleep(0)
            if self.app.rebalancing or self.stage.out.busy:
                break
        self.update_gauges(now)
        return stepped

    def update_gauges(self, now: float) -> None:
        """Gauges every second; the dashboard's history and `grid.zone_load` (the live load
        an OpenADR VEN reports to the utility) every `history_step_s`. A sweep over the
        owned zones takes at most GAUGES_BUDGET_S a turn: a fleet of hundreds of thousands
        of stations is covered over several turns (then each zone's figures are older than a
        second), never by holding the loop."""
        if not self._sweep:
            if now - self._last_gauges < 1.0:
                return
            self._last_gauges = now
            self._sweep = list(self.stage.zones.in_partitions(self.owned_partitions()))
            self._sweep.reverse()  # popped from the end: zones in the store's order
            self._sweep_totals = [0, 0]
            live = {zone.zone_id for zone in self._sweep}
            self._sampled = {z: t for z, t in self._sampled.items() if z in live}
        owned = self.owned_partitions()
        started = time.perf_counter()
        done = 0
        while self._sweep:
            if done and time.perf_counter() - started >= GAUGES_BUDGET_S:
                return
            zone = self._sweep.pop()
            if zone.partition not in owned or self.stage.zones.zones.get(zone.zone_id) \
                    is not zone:
                continue  # revoked or reloaded since the sweep began
            active, noncompliant = self.zone_gauges(zone, now)
            self._sweep_totals[0] += active
            self._sweep_totals[1] += noncompliant
            done += 1
        metrics.DR_ACTIVE.set(self._sweep_totals[0])
        metrics.DR_NONCOMPLIANT.set(self._sweep_totals[1])

    def zone_gauges(self, zone: ZoneEntry, now: float) -> tuple[int, int]:
        """One zone's gauges (and, every `history_step_s`, its history point, its
        `grid.zone_load` and its `grid.flexibility`); returns its active events and
        non-compliant stations."""
        zone_id = zone.zone_id
        sample = now - self._sampled.get(zone_id, 0.0) >= self.settings.history_step_s
        if sample:
            self._sampled[zone_id] = now
        out = self.stage.out
        summary = zone.load.summary(now, self.settings.stale_after_s)
        metrics.ZONE_LOAD.labels(zone=zone_id).set(summary["zone_total_power_kw"])
        metrics.ZONE_CAPACITY.labels(zone=zone_id).set(summary["zone_capacity_kw"])
        metrics.ZONE_UTILIZATION.labels(zone=zone_id).set(summary["utilization_pct"])
        age = zone.load_age_s(now)
        metrics.ZONE_LOAD_AGE.labels(zone=zone_id).set(math.nan if age is None else age)
        reporting = summary["stations_reporting"]
        metrics.ZONE_MEMBERS_SILENT.labels(zone=zone_id).set(summary["stations"] - reporting)
        view = zone.controller.view(now)
        freq = view["frequency"]
        cap = governing_cap(view)
        metrics.ZONE_CAP.labels(zone=zone_id).set(cap if cap is not None else math.nan)
        metrics.DR_SHORTFALL.labels(zone=zone_id).set(view["shortfall_kw"])
        if zone.controller.sites:
            site_gauges(zone.controller.site_view(zone.load.stations, now))
        if sample:
            self.history.setdefault(zone_id, deque(maxlen=HISTORY_POINTS)).append(
                (now, summary["zone_total_power_kw"], cap, summary["zone_capacity_kw"])
            )
            report = zone_load_report(summary, now, cap, view["shortfall_kw"],
                                      view["stations_uncontrollable"], reporting, age)
            out.send(out.zone_load, zone_id, codec.dumps(report))
        if freq is not None:
            metrics.FREQUENCY_LEVEL.labels(zone=zone_id).set(freq["level"])
            if sample:
                self.publish_flexibility(zone, freq, now)
        return view["active_events"], view["stations_noncompliant"]

    def publish_flexibility(self, zone: ZoneEntry, freq: dict, now: float) -> None:
        """`grid.flexibility` for a zone that offers frequency response: what an aggregator
        bids, and what the OpenADR VEN may report."""
        ctl = zone.controller
        available, load, controllable = flexibility(zone.load.stations, ctl.uncontrollable,
                                                    ctl.t, now)
        metrics.FLEXIBILITY.labels(zone=zone.zone_id).set(available)
        message = Flexibility(
            zone_id=zone.zone_id, area_id=freq["area_id"], available_kw=round(available, 3),
            committed_kw=freq["committed_kw"], load_kw=round(load, 3),
            stations_controllable=controllable, phase=freq["phase"], ts=from_epoch(now))
        out = self.stage.out
        out.send(out.flexibility, zone.zone_id, codec.dumps(message))


def site_gauges(sites: dict[str, dict]) -> None:
    """Each site's load, limit, utilisation and whether it is limited."""
    for site_id, v in sites.items():
        labels = {"site": site_id, "zone": v["zone_id"]}
        metrics.SITE_LOAD.labels(**labels).set(v["load_kw"])
        metrics.SITE_LIMIT.labels(**labels).set(v["limit_kw"])
        utilization = v["utilization_pct"]
        metrics.SITE_UTILIZATION.labels(**labels).set(
            math.nan if utilization is None else utilization)
        metrics.SITE_LIMITED.labels(**labels).set(1.0 if v["limited"] else 0.0)
