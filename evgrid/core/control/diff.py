"""Allocation diff: which stations get a new command.

A station is re-commanded when it was never told anything for the governing event, when its
new target moved more than the dead band from what it was told, or when which of its
connectors are suspended changed (a rotation): unchanged targets are not re-sent (chargers
and gateways are not flooded with the same limit every second).
"""

from __future__ import annotations

from evgrid.core.control.commands import Commanded, Source
from evgrid.core.control.frequency import FREQUENCY_PROFILE_VALID_S
from evgrid.core.types import Tunables


def needs_command(
    prev: Commanded | None, signal_id: str, target_kw: float, dead_band_kw: float,
    suspended: tuple[int, ...] = (),
) -> bool:
    if prev is None or prev.signal_id != signal_id or prev.suspended != suspended:
        return True
    return abs(prev.target_kw - target_kw) > dead_band_kw


def needs_limit(prev: Commanded | None, src: Source, target_kw: float,
                suspended: tuple[int, ...], now: float, t: Tunables) -> bool:
    """A new target, a new source, a new suspension, or a site limit's or a frequency
    activation's profile past half its validity (re-sent before the charger drops it)."""
    if needs_command(prev, src.signal_id, target_kw, t.dead_band_kw, suspended):
        return True
    assert prev is not None
    if src.reason == "SITE":
        return prev.dr_end_ts - now < t.site_profile_valid_s / 2
    if src.reason.startswith("FREQUENCY"):
        return prev.dr_end_ts - now < FREQUENCY_PROFILE_VALID_S / 2
    return False
