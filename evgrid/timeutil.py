"""Timestamps at the edges: ISO-8601 or epoch milliseconds in, aware UTC out.

Inside, evgrid works in epoch seconds (floats); this module is the one conversion point.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

# Epoch-ms inputs outside this range are almost certainly seconds or garbage.
_MIN_MS = 946_684_800_000  # 2000-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01


def parse_ts(value: object) -> datetime:
    """Accept ISO-8601 with an offset (or Z) or epoch milliseconds; return aware UTC."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be ISO-8601 text or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not _MIN_MS <= value <= _MAX_MS:
            raise ValueError("epoch-millisecond timestamp out of range (2000..2100)")
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("timestamp is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise ValueError("timestamp has no UTC offset (add Z or +hh:mm)")
        return parsed.astimezone(UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no UTC offset")
        return value.astimezone(UTC)
    raise ValueError("timestamp must be ISO-8601 text or epoch milliseconds")


def iso_epoch(value: str) -> float | None:
    """ISO-8601 text with an offset -> epoch seconds, the same float as
    `parse_ts(value).timestamp()` at a third of the cost (the meter-value hot path); None
    when `parse_ts` would refuse it or it lies outside 2000..2100, where `parse_ts` is left
    to decide (and to word why)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    # An aware datetime's timestamp does not depend on its offset: no conversion to UTC.
    ts = parsed.timestamp()
    return ts if _MIN_MS <= ts * 1000.0 <= _MAX_MS else None


def to_epoch(dt: datetime) -> float:
    return dt.timestamp()


def from_epoch(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def iso(ts: float | datetime) -> str:
    """ISO-8601 UTC with a Z, millisecond precision: the one output format."""
    return _iso(ts.timestamp() if isinstance(ts, datetime) else ts)


@lru_cache(maxsize=4096)
def _iso(ts: float) -> str:
    """Cached: one decision step writes the same few instants into every command it makes
    (its time, the event's end), six times per command."""
    return from_epoch(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")
