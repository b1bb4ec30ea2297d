"""The controller with sites: always-on limits, release after the hold, DR nested on top."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from evgrid.core.allocator import ac_floor_kw
from evgrid.core.control import Decisions, ZoneController
from evgrid.core.sites import SiteConfig
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables

from .drsim import T0, signal

AC_MIN = ac_floor_kw()
T = Tunables(compliance_grace_s=20.0, site_hold_s=30.0, site_release_hysteresis_pct=10.0)
DEPOT = SiteConfig("depot", "Z1", max_kw=40.0, margin_pct=10.0)  # threshold 36 kW


class SiteZone:
    """AC stations behind the depot (d0..d5, 11 kW cars) and outside it (o0, o1, 20 kW);
    commanded stations draw min(demand, target)."""

    def __init__(self, outside: int = 0, tunables: Tunables = T) -> None:
        self.ctl = ZoneController("Z1", tunables)
        self.sites = {"depot": DEPOT}
        self.ctl.sites = self.sites
        self.want = {f"d{i}": 0.0 for i in range(6)} | {f"o{i}": 20.0 for i in range(outside)}
        self.limit: dict[str, float | None] = dict.fromkeys(self.want)
        self.disobey: set[str] = set()

    def draw(self, station_id: str) -> float:
        lim = self.limit[station_id]
        want = self.want[station_id]
        return want if lim is None or station_id in self.disobey else min(want, lim)

    def rows(self, now: float) -> dict[str, StationRow]:
        out = {}
        for station_id in self.want:
            site = "depot" if station_id.startswith("d") else None
            kw = self.draw(station_id)
            session = "s" if self.want[station_id] > 0 else None
            out[station_id] = StationRow(
                StationConfig(station_id, "Z1", 22.0, 22.0, site_id=site),
                (ConnectorReading(1, "Type2", kw, now - 0.5, session, now - 0.5),))
        return out

    def site_kw(self) -> float:
        return sum(self.draw(s) for s in self.want if s.startswith("d"))

    def apply(self, d: Decisions) -> Decisions:
        for c in d.commands:
            self.limit[c.station_id] = c.target_power_kw if c.action == "SET" else None
        return d

    def tick(self, now: float) -> Decisions:
        return self.apply(self.ctl.on_tick(self.rows(now), now))

    def run(self, start: float, seconds: int) -> list[Decisions]:
        return [self.tick(start + k) for k in range(seconds)]


def commands(ds: list[Decisions]) -> list:
    return [c for d in ds for c in d.commands]


def test_a_site_that_never_approaches_its_limit_gets_no_command() -> None:
    z = SiteZone()
    for i in range(3):
        z.want[f"d{i}"] = 11.0  # 33 kW < 36
    assert commands(z.run(T0, 600)) == []


def test_sessions_one_by_one_fair_shares_and_no_oscillation() -> None:
    z = SiteZone()
    now = T0
    seen = []
    for i in range(6):
        z.want[f"d{i}"] = 11.0
        ds = z.run(now, 60)
        now += 60
        seen.append(commands(ds))
        active = [f"d{k}" for k in range(i + 1)]
        if 11.0 * (i + 1) <= 36.0:
            assert seen[-1] == []
            continue
        # one command per charging station for this change of who is charging, no more
        assert sorted(c.station_id for c in seen[-1]) == active
        assert {c.reason for c in seen[-1]} == {"SITE"}
        assert {c.signal_id for c in seen[-1]} == {"site:depot"}
        shares = {round(z.limit[s], 3) for s in active}
        assert shares == {round(36.0 / (i + 1), 3)}  # equal demands, equal shares
        for c in seen[-1]:
            assert all(cl.limit_a >= 6.0 for cl in c.connectors)
        assert z.site_kw() <= 36.0 + 1e-6
    # a steady fleet: nothing more for an hour
    assert commands(z.run(now, 3600)) == []


def test_a_site_profile_is_renewed_at_half_its_validity() -> None:
    t = dataclasses.replace(T, site_profile_valid_s=600.0)
    z = SiteZone(tunables=t)
    for i in range(4):
        z.want[f"d{i}"] = 11.0
    first = commands(z.run(T0, 2))
    assert {c.dr_end_ts - c.command_ts for c in first} == {600.0}
    half = 300
    assert commands(z.run(T0 + 2, int(half) - 2)) == []
    renewed = commands(z.run(T0 + half + 1, 1))
    assert sorted(c.station_id for c in renewed) == ["d0", "d1", "d2", "d3"]
    assert {c.target_power_kw for c in renewed} == {9.0}


def test_limits_released_within_the_hold_after_sessions_end() -> None:
    z = SiteZone()
    for i in range(5):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 10)
    assert z.ctl.site.limits["depot"].limited
    for i in range(5):
        z.want[f"d{i}"] = 0.0
    ended = T0 + 10
    ds = z.run(ended, 60)
    clears = [(k, c.station_id) for k, d in enumerate(ds) for c in d.commands
              if c.action == "CLEAR"]
    assert sorted(s for _, s in clears) == [f"d{i}" for i in range(5)]
    # idle stations are cleared at once; the site is released after the hold
    assert not z.ctl.site.limits["depot"].limited
    assert z.ctl.commanded == {}
    release_step = max(k for k, d in enumerate(ds) if d.commands)
    assert release_step <= T.site_hold_s + 1


def test_one_car_leaves_the_rest_share_what_it_had() -> None:
    z = SiteZone()
    for i in range(6):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 5)
    z.want["d5"] = 0.0
    ds = z.run(T0 + 5, 5)
    cmds = commands(ds)
    assert [c.station_id for c in cmds if c.action == "CLEAR"] == ["d5"]
    assert {round(z.limit[f"d{i}"], 3) for i in range(5)} == {7.2}


def test_a_site_under_its_floors_pauses_cars_in_turn() -> None:
    z = SiteZone()
    z.sites["depot"] = SiteConfig("depot", "Z1", max_kw=12.0)  # two cars at 6 A at most
    for i in range(6):
        z.want[f"d{i}"] = 11.0
    first = commands(z.run(T0, 2))
    assert len(first) == 6
    running = [s for s in z.want if z.limit[s]]
    assert len(running) == 2 and all(z.limit[s] >= AC_MIN for s in running)
    assert z.site_kw() <= 12.0 + 1e-6
    later = commands(z.run(T0 + T.suspend_rotation_s, 1))
    assert later  # the rotation moves who is paused
    assert [s for s in z.want if z.limit[s]] != running


def test_dr_on_top_one_limit_per_station_and_a_site_capped_baseline() -> None:
    z = SiteZone(outside=2)
    for i in range(6):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 5)
    assert z.site_kw() == pytest.approx(36.0)
    start = T0 + 5
    d = z.apply(z.ctl.on_signal(signal("E1", pct=30.0, start=start, received=start - 1),
                                z.rows(start), start))
    ev = z.ctl.book.get("E1")
    assert ev.baseline_kw == pytest.approx(36.0 + 40.0)  # not 66 + 40: the site limit is not DR
    cap = ev.cap_kw
    assert cap == pytest.approx(76.0 * 0.7)
    per_station = [c.station_id for c in d.commands]
    assert len(per_station) == len(set(per_station))  # one command per station
    reasons = {c.station_id: c.reason for c in d.commands}
    assert reasons["o0"] == reasons["o1"] == "DR"
    assert all(reasons.get(f"d{i}", "DR+SITE") == "DR+SITE" for i in range(6))
    z.run(start + 1, 30)
    total = sum(z.draw(s) for s in z.want)
    assert total <= cap + 0.01  # targets carry 3 decimals
    assert z.site_kw() <= 36.0 + 0.01
    # the event ends: the depot keeps its limit (a SET for the site, no CLEAR), o0/o1 cleared
    end = ev.signal.end_ts
    ds = z.run(end, 2)
    after = commands(ds)
    assert sorted(c.station_id for c in after if c.action == "CLEAR") == ["o0", "o1"]
    assert {c.reason for c in after if c.action == "SET"} == {"SITE"}
    assert z.site_kw() <= 36.0 + 1e-6
    report = next(r for d in ds for r in d.reports)
    assert report["baseline_kw"] == pytest.approx(76.0)
    # DR delivery against the site-limited baseline; what the depot's limit held back
    # (66 − 36 kW for the whole event) is reported apart, never credited to the event
    hours = report["duration_s"] / 3600.0
    assert report["delivered_kwh"] == pytest.approx((76.0 - cap) * hours, rel=0.01)
    assert report["site_limited_kwh"] == pytest.approx(30.0 * hours, rel=0.01)
    assert report["sites_limited"] == ["depot"]


def test_a_removed_site_releases_its_stations() -> None:
    z = SiteZone()
    for i in range(5):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 3)
    del z.sites["depot"]
    cmds = commands(z.run(T0 + 3, 2))
    assert sorted(c.station_id for c in cmds if c.action == "CLEAR") == [f"d{i}" for i in range(5)]
    assert z.ctl.site.limits == {}


def test_site_overload_alerted_once_per_episode() -> None:
    z = SiteZone()
    z.disobey = {"d0", "d1", "d2", "d3", "d4"}
    for i in range(5):
        z.want[f"d{i}"] = 11.0  # 55 kW, and nobody obeys
    ds = z.run(T0, 120)
    alerts = [a for d in ds for a in d.site_alerts]
    assert [a["alert_type"] for a in alerts] == ["SITE_OVERLOAD"]
    assert alerts[0]["site_id"] == "depot" and alerts[0]["overload_kw"] == pytest.approx(15.0)
    z.disobey.clear()
    ds = z.run(T0 + 120, 5)
    assert [a["alert_type"] for d in ds for a in d.site_alerts] == ["SITE_OVERLOAD_CLEARED"]


def test_a_station_naming_a_site_of_no_concern_to_the_zone_is_not_limited() -> None:
    z = SiteZone()
    z.sites.clear()
    z.sites["elsewhere"] = SiteConfig("elsewhere", "Z1", 1.0)
    for i in range(6):
        z.want[f"d{i}"] = 11.0
    assert commands(z.run(T0, 5)) == []


def test_state_round_trips_while_limited() -> None:
    z = SiteZone()
    for i in range(5):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 3)
    state = orjson.loads(orjson.dumps(z.ctl.to_dict()))
    twin = ZoneController.from_dict(state, T)
    twin.sites = z.sites
    assert twin.to_dict() == z.ctl.to_dict()
    assert twin.on_tick(z.rows(T0 + 3), T0 + 3).commands == []  # same decisions, none new


def test_site_only_zones_step_every_site_step_and_events_every_second() -> None:
    z = SiteZone()
    z.tick(T0)
    assert z.ctl.next_deadline(T0) == T0 + T.site_step_s
    z.apply(z.ctl.on_signal(signal("E1", pct=10.0, start=T0 + 1, received=T0), z.rows(T0 + 1),
                            T0 + 1))
    assert z.ctl.next_deadline(T0 + 1) == T0 + 2


def test_a_row_that_changes_a_sites_demand_wakes_the_zone_at_once() -> None:
    z = SiteZone()
    for i in range(4):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 3)  # limited: every car held at 9 kW, demand held at 11
    now = T0 + 3
    rows = z.rows(now)
    for station_id in ("d0", "d3"):
        z.ctl.note_row(rows[station_id], now)  # at its limit: nothing new
    assert z.ctl.wake_at is None
    z.want["d4"] = 11.0  # a session starts
    z.ctl.note_row(z.rows(now)["d4"], now)
    assert z.ctl.wake_at == now
    z.tick(now)
    assert z.ctl.wake_at is None
    z.want["d0"] = 0.0  # a session ends
    z.ctl.note_row(z.rows(now + 1)["d0"], now + 1)
    assert z.ctl.wake_at == now + 1


def test_rows_outside_any_site_never_wake_the_zone() -> None:
    z = SiteZone(outside=1)
    z.tick(T0)
    z.ctl.note_row(z.rows(T0 + 1)["o0"], T0 + 1)
    assert z.ctl.wake_at is None


def test_a_release_is_due_when_the_hold_ends_not_at_the_next_periodic_step() -> None:
    z = SiteZone()
    for i in range(4):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 2)
    for i in range(4):
        z.want[f"d{i}"] = 0.0
    z.tick(T0 + 2.5)  # the sessions ended: under the release level from here
    z.tick(T0 + 2.5 + T.site_hold_s - 3)  # a periodic step 3 s before the hold ends
    assert z.ctl.next_deadline(T0 + 30) == T0 + 2.5 + T.site_hold_s  # not 5 s later
    z.tick(T0 + 2.5 + T.site_hold_s)
    assert not z.ctl.site.limits["depot"].limited


def test_session_peaks_at_different_times_do_not_limit_a_site_under_its_threshold() -> None:
    """Four cars that each peaked at 11 kW, never together: the site never drew more than
    33 kW, so it is never limited (its demand is its load while it is not limited)."""
    z = SiteZone()
    for i in range(3):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 3)
    z.want["d0"] = 3.0  # tapers
    z.run(T0 + 3, 3)
    z.want["d3"] = 11.0  # 3 + 11 + 11 + 11 = 36: not over
    assert commands(z.run(T0 + 6, 30)) == []
    assert not z.ctl.site.limits["depot"].limited


def test_an_unlimited_site_wakes_only_for_a_row_that_would_take_it_over() -> None:
    z = SiteZone()
    for i in range(3):
        z.want[f"d{i}"] = 11.0
    z.run(T0, 2)  # 33 kW
    now = T0 + 2
    z.want["d3"] = 2.0
    z.ctl.note_row(z.rows(now)["d3"], now)  # 35 kW: still under 36
    assert z.ctl.wake_at is None
    z.want["d3"] = 11.0
    z.ctl.note_row(z.rows(now)["d3"], now)  # 44 kW
    assert z.ctl.wake_at == now


def test_rows_between_two_steps_add_up_to_a_wake() -> None:
    z = SiteZone()
    z.run(T0, 2)  # nothing charging
    now = T0 + 2
    for i in range(6):
        z.want[f"d{i}"] = 11.0
    rows = z.rows(now)
    woken = []
    for i in range(6):
        z.ctl.note_row(rows[f"d{i}"], now)
        woken.append(z.ctl.wake_at is not None)
    assert woken == [False, False, False, True, True, True]  # 44 kW from the fourth on
