"""`evgrid simulate --ocpp`: the fleet as OCPP chargers (both versions, some rejecting, some
dropping their connection) through the gateway."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from evgrid.simulator.fleet import Fleet
from evgrid.simulator.ocpp_runner import plan, run_ocpp_simulation
from tests.gateway.commands import command
from tests.gateway.conftest import url
from tests.integration.harness import Collector, jdump, produce

pytestmark = pytest.mark.integration


async def test_simulated_fleet_over_ocpp(gateway) -> None:
    settings, t = gateway.settings, gateway.settings.topics
    fleet = Fleet(8, 2, seed=3, initial_occupancy=1.0)
    layout = plan(fleet, 0.3, 0.3, 4.0, seed=3)
    assert layout.rejecting and layout.dropping  # the seed gives some of each
    accepting = next(s for s in sorted(fleet.stations) if s not in layout.rejecting
                     and s not in layout.dropping)
    rejecting = next(s for s in sorted(layout.rejecting) if s not in layout.dropping)
    async with Collector(settings.bootstrap_servers, t.meter_values, t.station_status,
                         t.outcomes) as seen:
        sim = asyncio.create_task(run_ocpp_simulation(
            settings, fleet, url(gateway), duration_s=4.0, interval_s=1.0,
            reject_fraction=0.3, drop_fraction=0.3, away_s=0.5, seed=3))
        await seen.wait(t.meter_values, lambda m: len({r["station_id"] for r in m}) == 8)
        await produce(settings.bootstrap_servers, t.commands, [
            (s.encode(), jdump(command(s, f"sim-{s}"))) for s in (accepting, rejecting)])
        outcomes = await seen.wait(t.outcomes, lambda m: len(m) >= 2)
        stats = await sim
        status = list(seen.messages[t.station_status])
    assert {o["station_id"]: o["status"] for o in outcomes} == {
        accepting: "Accepted", rejecting: "Rejected"}
    assert {s["ocpp_version"] for s in status if s["event"] == "boot"} == {"1.6", "2.0.1"}
    boots = Counter(s["station_id"] for s in status if s["event"] == "boot")
    assert all(boots[s] == 2 for s in layout.dropping)  # dropped, came back, booted again
    assert stats.drops == len(layout.dropping) and stats.readings > 0
