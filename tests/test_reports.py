"""`evgrid report` pieces that need no broker: --since parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evgrid.reports import parse_since

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", NOW - timedelta(minutes=30)),
    ("12h", NOW - timedelta(hours=12)),
    ("7d", NOW - timedelta(days=7)),
    ("2026-11-20T08:00:00Z", datetime(2026, 11, 20, 8, tzinfo=UTC)),
    ("2026-11-20T08:00:00", datetime(2026, 11, 20, 8, tzinfo=UTC)),
])
def test_since_is_a_time_or_a_duration_back(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_a_bad_since_says_what_it_accepts() -> None:
    with pytest.raises(SystemExit, match="ISO-8601 time nor a duration"):
        parse_since("last week", NOW)
