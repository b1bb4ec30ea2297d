"""What one controller step decided: the agent publishes these, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field

from evgrid.core.control.commands import Command


@dataclass(frozen=True, slots=True)
class RefusedSignal:
    """A signal the zone would not take (`reason` is the dead-letter reason,
    `too_many_events`). `first_in_episode` is True for the first refusal since the zone last
    had room, so the agent alerts once per episode and dead-letters every one."""

    signal_id: str
    zone_id: str
    reason: str
    detail: str
    first_in_episode: bool


@dataclass(slots=True)
class Decisions:
    commands: list[Command] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)  # grid.dr_status bodies
    compliance: list[dict] = field(default_factory=list)  # alerts.dr.compliance bodies
    reports: list[dict] = field(default_factory=list)  # grid.dr_reports bodies, one per event
    refused: list[RefusedSignal] = field(default_factory=list)
    site_alerts: list[dict] = field(default_factory=list)  # SITE_OVERLOAD episodes
    activations: list[dict] = field(default_factory=list)  # finished frequency activations
    signal_alerts: list[dict] = field(default_factory=list)  # FREQUENCY_SILENT

    def __bool__(self) -> bool:
        return bool(
            self.commands or self.statuses or self.compliance or self.reports or self.refused
            or self.site_alerts or self.activations or self.signal_alerts
        )


def refusal(zone_id: str, signal_id: str, live: int, max_live: int, reason: str,
            first: bool) -> RefusedSignal:
    """A signal refused because the zone holds as many events as it may."""
    return RefusedSignal(
        signal_id=signal_id,
        zone_id=zone_id,
        reason=reason,
        detail=(
            f"zone {zone_id} already holds {live} scheduled or active events "
            f"(EVGRID_MAX_EVENTS_PER_ZONE={max_live}); end or RESTORE one first, or raise "
            "the limit"
        ),
        first_in_episode=first,
    )
