"""Two gateway instances: every instance reads every command; the one holding the charger
delivers, the one that held it last reports it Offline, and a charger that moves is served
by its new instance without a second outcome from the old one."""

from __future__ import annotations

import pytest

from evgrid.topics import ensure_topics
from tests.gateway.commands import command
from tests.gateway.conftest import start_gateway, url
from tests.gateway.pycharger import Session
from tests.gateway.test_gateway import assert_one_final_each
from tests.integration.harness import Collector, jdump, produce, wait_for

pytestmark = pytest.mark.integration


async def test_commands_reach_the_instance_holding_the_charger(gateway_settings) -> None:
    base = gateway_settings.model_copy(update={"gateway_instances": "gw1,gw2"})
    await ensure_topics(base)
    gw1 = await start_gateway(base.model_copy(update={"gateway_instance_id": "gw1"}))
    gw2 = await start_gateway(base.model_copy(update={"gateway_instance_id": "gw2"}))
    t, bootstrap = base.topics, base.bootstrap_servers

    def holder_seen_by(gw, station_id: str, holder: str) -> bool:
        st = gw.ledger.stations.get(station_id)
        return st is not None and st.holder == holder

    async def send(c: dict) -> None:
        await produce(bootstrap, t.commands, [(c["station_id"].encode(), jdump(c))])

    try:
        async with Collector(bootstrap, t.outcomes) as seen:
            def statuses(command_id: str) -> list[tuple[str, str]]:
                return [(o["status"], o["gateway_id"]) for o in seen.messages[t.outcomes]
                        if o["command_id"] == command_id]

            async with Session(url(gw2), "CP-M") as on_gw2:
                await wait_for(lambda: holder_seen_by(gw1, "CP-M", "gw2"), 15)
                await send(command("CP-M", "m-1"))
                await seen.wait(t.outcomes, lambda m: statuses("m-1"))
                assert [a for a, _ in on_gw2.received] == ["SetChargingProfile"]
            await wait_for(lambda: "CP-M" not in gw2.connections, 15)
            await send(command("CP-M", "m-2"))  # away: gw2 held it last, gw2 says Offline
            await seen.wait(t.outcomes, lambda m: statuses("m-2"))
            async with Session(url(gw1), "CP-M") as on_gw1:  # it comes back on gw1
                await seen.wait(t.outcomes, lambda m: len(statuses("m-2")) == 2)
                assert [a for a, _ in on_gw1.received] == ["SetChargingProfile"]
            # gw2 learns from the outcomes topic that m-2 is final: no late Expired from it.
            await wait_for(lambda: gw2.ledger.stations["CP-M"].pending is None, 15)
            outcomes = list(seen.messages[t.outcomes])
    finally:
        await gw1.stop()
        await gw2.stop()
    assert [(o["status"], o["gateway_id"]) for o in outcomes if o["command_id"] == "m-1"] == [
        ("Accepted", "gw2")]
    assert [(o["status"], o["gateway_id"]) for o in outcomes if o["command_id"] == "m-2"] == [
        ("Offline", "gw2"), ("Accepted", "gw1")]
    assert_one_final_each(outcomes)
