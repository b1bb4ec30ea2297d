"""Command building: the one place a decision becomes a `Command` with its stable ids.

`command_id` is a hash of the decision (zone, event, station, per-station sequence number,
action, target), so a worker that crashed and replays makes the same ids and a gateway drops
the duplicates. `profile_id_for` is stable per (event, station), so a resend replaces the
charger's profile instead of stacking another one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from evgrid.core.allocator import ConnectorLimit
from evgrid.core.lifecycle import DREvent
from evgrid.core.types import StationRow

SET, CLEAR = "SET", "CLEAR"


@dataclass(slots=True)
class Command:
    """One decision for one station (read-only; not frozen, for the cost of building
    thousands in one decision, as the allocator's records)."""

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


def command_id(zone_id: str, signal_id: str, station_id: str, seq: int, action: str,
               target: float | None) -> str:
    """Same decision → same id (a gateway drops duplicates after a crash and replay);
    a later decision, even with the same target, gets a new id through `seq`."""
    t = "-" if target is None else f"{target:.1f}"
    text = f"{zone_id}\x00{signal_id}\x00{station_id}\x00{seq}\x00{action}\x00{t}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def profile_id_for(signal_id: str, station_id: str) -> int:
    """Stable per (event, station): a resend replaces the profile instead of stacking one."""
    digest = hashlib.blake2b(f"{signal_id}\x00{station_id}".encode(), digest_size=8).digest()
    # Headroom below 2^31 - 1: per-connector profiles use id + n.
    return int.from_bytes(digest, "big") % (2**31 - 1 - 1024) + 1


@dataclass(slots=True)
class Commanded:
    """What a station was last told (a SET), enough to clear exactly that profile later and to
    match the gateway's outcome to it."""

    signal_id: str
    priority: int
    dr_end_ts: float
    target_kw: float
    profile_id: int
    profile_mode: str
    stack_level: int
    connector_ids: tuple[int, ...]
    command_id: str
    commanded_at: float
    # Connectors told 0 (suspended to meet a cap under their minimum level): a rotation that
    # moves who is suspended is a new decision even when the station's total is unchanged.
    suspended: tuple[int, ...] = ()
    reason: str = "DR"

    def to_dict(self) -> dict:
        return {
            "signal_id": self.signal_id,
            "priority": self.priority,
            "dr_end_ts": self.dr_end_ts,
            "target_kw": self.target_kw,
            "profile_id": self.profile_id,
            "profile_mode": self.profile_mode,
            "stack_level": self.stack_level,
            "connector_ids": list(self.connector_ids),
            "command_id": self.command_id,
            "commanded_at": self.commanded_at,
            "suspended": list(self.suspended),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Commanded:
        return cls(
            signal_id=d["signal_id"],
            priority=d["priority"],
            dr_end_ts=d["dr_end_ts"],
            target_kw=d["target_kw"],
            profile_id=d["profile_id"],
            profile_mode=d["profile_mode"],
            stack_level=d["stack_level"],
            connector_ids=tuple(d["connector_ids"]),
            command_id=d["command_id"],
            commanded_at=d["commanded_at"],
            suspended=tuple(d["suspended"]),
            reason=d.get("reason", "DR"),
        )


#: The signal id of a site limit's commands (no DR event): "site:" and the site's id.
SITE_SIGNAL_PREFIX = "site:"
#: The priority a site limit's commands carry: normal operation, not an emergency.
SITE_PRIORITY = 3


@dataclass(frozen=True, slots=True)
class Source:
    """Why a station is limited: the DR event governing it and/or its site's limit."""

    signal_id: str
    priority: int
    end_ts: float  # the profile's validTo
    reason: str  # DR | SITE | DR+SITE


def source_for(gov: DREvent | None, site_id: str | None, now: float,
               site_profile_valid_s: float) -> Source:
    """What a station's command says limits it: the governing event, its limited site, or
    both (one profile either way). A site limit's profile is valid `site_profile_valid_s`."""
    if gov is not None:
        reason = "DR" if site_id is None else "DR+SITE"
        return Source(gov.signal_id, gov.signal.priority, gov.signal.end_ts, reason)
    assert site_id is not None
    return Source(SITE_SIGNAL_PREFIX + site_id, SITE_PRIORITY, now + site_profile_valid_s,
                  "SITE")


def limit_command(
    zone_id: str, source: Source, row: StationRow, target_kw: float, shed_kw: float,
    connectors: tuple[ConnectorLimit, ...], seq: int, now: float,
) -> Command:
    station_id = row.station_id
    signal_id = source.signal_id
    config = row.config
    # Positional, in the field order (a third of the time of 16 keywords; one per station).
    return Command(
        station_id, zone_id, SET, target_kw, round(max(0.0, shed_kw), 3), signal_id,
        source.priority, source.end_ts, now, connectors, profile_id_for(signal_id, station_id),
        config.profile_mode, config.stack_level, seq,
        command_id(zone_id, signal_id, station_id, seq, SET, target_kw), source.reason,
    )


def commanded_from(cmd: Command, suspended: tuple[int, ...]) -> Commanded:
    """The station's standing after a SET (`suspended`: `suspended_of` its connectors)."""
    assert cmd.target_power_kw is not None
    return Commanded(
        cmd.signal_id, cmd.priority, cmd.dr_end_ts, cmd.target_power_kw, cmd.profile_id,
        cmd.profile_mode, cmd.stack_level, tuple([c.connector_id for c in cmd.connectors]),
        cmd.command_id, cmd.command_ts, suspended, cmd.reason,
    )


def suspended_of(connectors: tuple[ConnectorLimit, ...]) -> tuple[int, ...]:
    """The connectors told 0."""
    return tuple([c.connector_id for c in connectors if c.limit_kw <= 0.0])


def clear_command(
    zone_id: str, station_id: str, prev: Commanded, seq: int, now: float
) -> Command:
    """Clears exactly the profile(s) the last SET installed."""
    return Command(
        station_id=station_id,
        zone_id=zone_id,
        action=CLEAR,
        target_power_kw=None,
        station_shed_kw=0.0,
        signal_id=prev.signal_id,
        priority=prev.priority,
        dr_end_ts=prev.dr_end_ts,
        command_ts=now,
        reason=prev.reason,
        connectors=(),
        profile_id=prev.profile_id,
        profile_mode=prev.profile_mode,
        stack_level=prev.stack_level,
        seq=seq,
        command_id=command_id(zone_id, prev.signal_id, station_id, seq, CLEAR, None),
        connector_ids=prev.connector_ids,
    )
