"""The VEN's memory of the utility's events, and every decision it takes about them.

Pure (no I/O, `now` passed in): the edge feeds it each event distribution, a tick, and the
engine's `grid.dr_status`; it answers with the `grid.demand_response` messages to publish and
the opt responses to send. Publishing is idempotent: a re-delivered event publishes nothing, a
change publishes the new content once, with a later `received_ts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evgrid.openadr.mapping import TargetMap
from evgrid.openadr.signals import Levels, Plan, Unsupported, plan_event

OPT_IN, OPT_OUT = "optIn", "optOut"


@dataclass(frozen=True)
class OptResponse:
    """One eventResponse for oadrCreatedEvent: the opt, and the reason when opting out."""

    event_id: str
    modification_number: int
    opt_type: str
    reason: str = "OK"


@dataclass
class Decision:
    messages: list[dict[str, Any]] = field(default_factory=list)  # (zone_id is the key)
    responses: list[OptResponse] = field(default_factory=list)

    def extend(self, other: Decision) -> None:
        self.messages.extend(other.messages)
        self.responses.extend(other.responses)


@dataclass
class _Event:
    plan: Plan | None
    zones: tuple[str, ...]
    opt: str
    reason: str
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    shortfall_kw: dict[str, float] = field(default_factory=dict)
    reported_opt: str = OPT_IN


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat().replace("+00:00", "Z")


class EventTracker:
    """Known events by event_id; see the module docstring."""

    def __init__(self, targets: TargetMap, levels: Levels, shortfall_optout_kw: float) -> None:
        self.targets = targets
        self.levels = levels
        self.shortfall_optout_kw = shortfall_optout_kw
        self.events: dict[str, _Event] = {}

    # -- the VTN's distribution ------------------------------------------------------------

    def on_distribution(self, events: Iterable[Mapping[str, Any]], now: float) -> Decision:
        """One oadrDistributeEvent: every event the VTN holds for us. An event we published
        that is missing from it was cancelled implicitly (openleadr ignores that: #92)."""
        decision = Decision()
        seen: set[str] = set()
        for event in events:
            descriptor = event.get("event_descriptor") or {}
            event_id = str(descriptor.get("event_id") or "")
            seen.add(event_id)
            decision.extend(self._on_event(event_id, event, now))
        for event_id in [e for e in self.events if e not in seen]:
            decision.messages.extend(self._restore(self.events.pop(event_id), now))
        return decision

    def _on_event(self, event_id: str, event: Mapping[str, Any], now: float) -> Decision:
        descriptor = event.get("event_descriptor") or {}
        status = descriptor.get("event_status")
        modification = int(descriptor.get("modification_number") or 0)
        known = self.events.get(event_id)
        decision = Decision()
        if status == "cancelled":
            if known is not None:
                decision.messages.extend(self._restore(self.events.pop(event_id), now))
            return self._respond(decision, event, OptResponse(event_id, modification, OPT_IN))
        if status == "completed":
            self.events.pop(event_id, None)
            return decision
        if known is not None and known.plan is not None \
                and known.plan.modification_number == modification:
            # A re-delivery: same answer, nothing published.
            return self._respond(decision, event, OptResponse(
                event_id, modification, known.reported_opt, known.reason))
        tracked = self._translate(event_id, event, modification)
        if known is not None:
            tracked.published = known.published
            tracked.shortfall_kw = known.shortfall_kw
        self.events[event_id] = tracked
        if tracked.opt == OPT_OUT:
            # Never guessed: nothing published, and anything published before is withdrawn.
            decision.messages.extend(self._restore(tracked, now))
        else:
            decision.messages.extend(self._sync(tracked, now))
        tracked.reported_opt = self._effective_opt(tracked)[0]
        return self._respond(decision, event, OptResponse(
            event_id, modification, *self._effective_opt(tracked)))

    def _translate(self, event_id: str, event: Mapping[str, Any], modification: int) -> _Event:
        resolution = self.targets.resolve(event.get("targets") or [])
        try:
            plan = plan_event(event, self.levels)
        except Unsupported as exc:
            return _Event(None, resolution.zones, OPT_OUT, str(exc))
        if resolution.reason is not None:
            return _Event(plan, (), OPT_OUT, resolution.reason)
        return _Event(plan, resolution.zones, OPT_IN, "OK")

    @staticmethod
    def _respond(decision: Decision, event: Mapping[str, Any], response: OptResponse) -> Decision:
        if event.get("response_required", "always") == "always":
            decision.responses.append(response)
        return decision

    # -- time ------------------------------------------------------------------------------

    def on_tick(self, now: float) -> Decision:
        """A later interval with another amount updates the event; ended events are dropped."""
        decision = Decision()
        for event_id, tracked in list(self.events.items()):
            if tracked.plan is not None and tracked.plan.end <= now:
                del self.events[event_id]
            elif tracked.opt == OPT_IN:
                decision.messages.extend(self._sync(tracked, now))
        return decision

    # -- the engine's view -----------------------------------------------------------------

    def on_dr_status(self, status: Mapping[str, Any]) -> Decision:
        """optOut while a zone reports a shortfall it cannot close (its floors exceed the cap),
        optIn again once it closes: the utility is told the truth."""
        decision = Decision()
        signal_id = str(status.get("signal_id") or "")
        if not signal_id.startswith("oadr:"):
            return decision
        tracked = self.events.get(signal_id[len("oadr:"):])
        if tracked is None or tracked.plan is None or tracked.opt != OPT_IN:
            return decision
        zone_id = str(status.get("zone_id"))
        shortfall = status.get("shortfall_kw")
        if status.get("state") == "ACTIVE" and isinstance(shortfall, int | float):
            tracked.shortfall_kw[zone_id] = float(shortfall)
        else:
            tracked.shortfall_kw.pop(zone_id, None)
        opt, reason = self._effective_opt(tracked)
        if opt != tracked.reported_opt:
            tracked.reported_opt = opt
            decision.responses.append(OptResponse(
                tracked.plan.event_id, tracked.plan.modification_number, opt, reason))
        return decision

    def _effective_opt(self, tracked: _Event) -> tuple[str, str]:
        if tracked.opt == OPT_OUT:
            return OPT_OUT, tracked.reason
        short = {z: kw for z, kw in tracked.shortfall_kw.items()
                 if kw > self.shortfall_optout_kw}
        if short:
            return OPT_OUT, "cannot reach the cap: " + ", ".join(
                f"zone {z} short by {kw:.1f} kW" for z, kw in sorted(short.items()))
        return OPT_IN, "OK"

    # -- messages --------------------------------------------------------------------------

    def _sync(self, tracked: _Event, now: float) -> list[dict[str, Any]]:
        """Publish each zone's content at `now` when it differs from what was published."""
        plan = tracked.plan
        assert plan is not None
        if plan.end <= now:
            return []
        step = plan.step_at(now)
        out: list[dict[str, Any]] = []
        for zone_id in tracked.zones:
            content = {
                "signal_id": plan.signal_id,
                "zone_id": zone_id,
                "signal_type": step.signal_type,
                **step.amount,
                "start_ts": _iso(plan.start),
                "end_ts": _iso(plan.end),
                "priority": plan.priority,
            }
            if tracked.published.get(zone_id) != content:
                tracked.published[zone_id] = content
                out.append({**content, "received_ts": _iso(now)})
        for zone_id in [z for z in tracked.published if z not in tracked.zones]:
            out.append(self._restore_message(tracked.published.pop(zone_id), now))
        return out

    def _restore(self, tracked: _Event, now: float) -> list[dict[str, Any]]:
        out = [self._restore_message(content, now) for content in tracked.published.values()]
        tracked.published = {}
        return out

    @staticmethod
    def _restore_message(content: Mapping[str, Any], now: float) -> dict[str, Any]:
        return {
            "signal_id": content["signal_id"],
            "zone_id": content["zone_id"],
            "signal_type": "RESTORE",
            "start_ts": content["start_ts"],
            "end_ts": content["end_ts"],
            "priority": content["priority"],
            "received_ts": _iso(now),
        }
