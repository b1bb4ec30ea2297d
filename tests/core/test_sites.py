"""Site limits: activation with margin, release with hysteresis after a hold, overload episodes."""

from __future__ import annotations

import pytest

from evgrid.core.overload import HysteresisAlarm
from evgrid.core.sites import LIMIT, RELEASE, SiteConfig, SiteLimit, site_alert

SITE = SiteConfig("depot", "z1", max_kw=40.0, margin_pct=10.0)
THRESHOLD = 36.0
HYST, HOLD = 10.0, 30.0  # release at ≤ 32.4 kW held for 30 s


def test_threshold_is_the_limit_less_its_margin() -> None:
    assert SITE.threshold_kw() == pytest.approx(THRESHOLD)
    assert SiteConfig("s", "z", 40.0).threshold_kw() == 40.0


def test_current_limit_binds_when_lower() -> None:
    site = SiteConfig("s", "z", max_kw=100.0, max_current_a=50.0, margin_pct=0.0)
    assert site.limit_kw() == pytest.approx(34.5)  # 50 A x 3 x 230 V
    assert site.limit_kw(phases=1) == pytest.approx(11.5)
    assert SiteConfig("s", "z", 20.0, max_current_a=50.0).limit_kw() == 20.0


@pytest.mark.parametrize(("demand", "edge"), [
    (0.0, None), (33.0, None), (THRESHOLD, None), (THRESHOLD + 0.01, LIMIT), (44.0, LIMIT),
])
def test_limits_only_above_the_threshold(demand: float, edge: str | None) -> None:
    s = SiteLimit()
    assert s.step(demand, THRESHOLD, HYST, HOLD, 100.0) == edge
    assert s.limited == (edge == LIMIT)
    assert s.since == (100.0 if edge else None)


def test_a_limited_site_stays_limited_while_demand_is_high() -> None:
    s = SiteLimit()
    assert s.step(44.0, THRESHOLD, HYST, HOLD, 0.0) == LIMIT
    for now in range(1, 3600):
        assert s.step(44.0, THRESHOLD, HYST, HOLD, float(now)) is None
    assert s.limited and s.since == 0.0


def test_release_needs_the_hysteresis_and_the_whole_hold() -> None:
    s = SiteLimit()
    s.step(44.0, THRESHOLD, HYST, HOLD, 0.0)
    # between the release level (32.4) and the threshold: never released
    for now in range(1, 200):
        assert s.step(34.0, THRESHOLD, HYST, HOLD, float(now)) is None
    assert s.below_since is None
    # under the release level: released exactly when the hold has passed
    assert s.step(22.0, THRESHOLD, HYST, HOLD, 200.0) is None
    assert s.below_since == 200.0
    assert s.step(22.0, THRESHOLD, HYST, HOLD, 229.9) is None
    assert s.step(22.0, THRESHOLD, HYST, HOLD, 230.0) == RELEASE
    assert not s.limited and s.since is None and s.below_since is None
    assert s.step(22.0, THRESHOLD, HYST, HOLD, 231.0) is None


def test_a_rise_during_the_hold_restarts_it() -> None:
    s = SiteLimit()
    s.step(44.0, THRESHOLD, HYST, HOLD, 0.0)
    s.step(22.0, THRESHOLD, HYST, HOLD, 10.0)
    s.step(33.0, THRESHOLD, HYST, HOLD, 30.0)  # above the release level: hold restarts
    assert s.below_since is None
    s.step(22.0, THRESHOLD, HYST, HOLD, 31.0)
    assert s.step(22.0, THRESHOLD, HYST, HOLD, 60.0) is None
    assert s.step(22.0, THRESHOLD, HYST, HOLD, 61.0) == RELEASE


def test_hold_zero_releases_at_once() -> None:
    s = SiteLimit()
    s.step(44.0, THRESHOLD, HYST, 0.0, 0.0)
    assert s.step(0.0, THRESHOLD, HYST, 0.0, 1.0) == RELEASE


def test_a_steady_fleet_never_oscillates() -> None:
    """Demand steady above the threshold, or steady between release level and threshold:
    one edge at most, whatever the number of steps."""
    for demand in (44.0, 35.0, 20.0):
        s = SiteLimit()
        edges = [s.step(demand, THRESHOLD, HYST, HOLD, float(now)) for now in range(1000)]
        assert len([e for e in edges if e]) == (1 if demand > THRESHOLD else 0)


def test_round_trip() -> None:
    s = SiteLimit(alarm=HysteresisAlarm())
    s.step(44.0, THRESHOLD, HYST, HOLD, 5.0)
    s.step(1.0, THRESHOLD, HYST, HOLD, 6.0)
    assert SiteLimit.from_dict(s.to_dict()) == s


def test_overload_alerted_once_per_episode() -> None:
    alarm = HysteresisAlarm(2.0)
    alerts = [site_alert(SITE, kw, 40.0, alarm, float(i))
              for i, kw in enumerate([39.0, 41.0, 43.0, 40.5, 39.5, 38.0, 41.0])]
    kinds = [a["alert_type"] for a in alerts if a]
    assert kinds == ["SITE_OVERLOAD", "SITE_OVERLOAD_CLEARED", "SITE_OVERLOAD"]
    first = next(a for a in alerts if a)
    assert first["site_id"] == "depot" and first["overload_kw"] == pytest.approx(1.0)
