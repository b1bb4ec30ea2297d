"""Sites on the real broker: a depot of six 11 kW AC stations behind a 40 kW connection,
sessions starting one by one, released after they end, then a DR event on top."""

from __future__ import annotations

import asyncio
import time

import pytest

from evgrid.timeutil import iso
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    free_port,
    isolated_settings,
    jdump,
    produce,
)

pytestmark = pytest.mark.integration

HOLD_S = 3.0
DEPOT = {"site_id": "depot", "zone_id": "Z1", "max_kw": 40.0, "margin_pct": 10.0}
THRESHOLD = 36.0
ROUND_S = 0.4


@pytest.fixture
async def site_worker(kafka_broker, unique_prefix, tmp_path):
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 compliance_grace_s=3.0, site_hold_s=HOLD_S)
    w = WorkerProcess(settings, tmp_path / "worker.log").start()
    await w.wait_ready()
    yield w
    assert w.alive(), w.log_tail()
    w.stop()


def mapping(sid: str, site: str | None) -> dict:
    return {"station_id": sid, "zone_id": "Z1", "max_station_kw": 22.0,
            "contract_max_kw": 22.0, **({"site_id": site} if site else {})}


class Fleet:
    """Cars that draw what they want, or their last SET's limit when lower (chargers that
    apply a limit at once); readings every round."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.want = {f"D{i}": 0.0 for i in range(6)} | {"O0": 0.0, "O1": 0.0}
        self.limit: dict[str, float | None] = dict.fromkeys(self.want)
        self.applied = 0
        self.depot_kw: list[tuple[float, float]] = []  # (time, metered depot load)

    def draw(self, sid: str) -> float:
        lim = self.limit[sid]
        return self.want[sid] if lim is None else min(self.want[sid], lim)

    def apply(self, commands: list[dict]) -> None:
        for c in commands[self.applied:]:
            self.limit[c["station_id"]] = c["target_power_kw"] if c["action"] == "SET" else None
        self.applied = len(commands)

    async def rounds(self, seen: Collector, commands_topic: str, n: int) -> None:
        for _ in range(n):
            self.apply(seen.messages[commands_topic])
            now = time.time()
            records = []
            for sid in self.want:
                kw = self.draw(sid)
                records.append((sid.encode(), jdump({
                    "station_id": sid, "connector_id": 1, "connector_type": "Type2",
                    "session_id": f"s-{sid}" if self.want[sid] else None,
                    "power_kw": round(kw, 3), "current_a": kw * 1000 / 690,
                    "voltage_v": 230.0, "event_ts": iso(now)})))
            await produce(self.bootstrap, self.topic, records)
            self.depot_kw.append((now, sum(self.draw(f"D{i}") for i in range(6))))
            await asyncio.sleep(ROUND_S)


def longest_over(samples: list[tuple[float, float]], limit: float) -> float:
    """The longest stretch (s) the depot's metered load stayed above `limit`."""
    longest, since = 0.0, None
    for ts, kw in samples:
        if kw > limit:
            since = ts if since is None else since
            longest = max(longest, ts - since)
        else:
            since = None
    return longest


async def site_view(w: WorkerProcess) -> dict:
    status, body = await w.get("/sites/depot")  # redirected to its zone's owner
    assert status == 200, body
    return body


async def test_depot_held_under_its_limit_fairly_then_dr_on_top(site_worker, kafka_broker):
    w, b = site_worker, kafka_broker.bootstrap
    t = w.settings.topics
    async with Collector(b, t.commands, t.deadletter, t.dr_status) as seen:
        # Bad site records first: each dead-lettered with its own reason, nothing changed.
        await produce(b, t.sites, [
            (b"depot", jdump({**DEPOT, "max_kw": -5.0})),
            (b"ghost", None),
            (b"depot", jdump(DEPOT)),
            (b"depot", jdump({**DEPOT, "zone_id": "Z2"})),
        ])
        letters = await seen.wait(t.deadletter, lambda d: len(d) >= 3)
        assert sorted(d["reason"] for d in letters) == [
            "max_kw:greater_than_equal", "site:two_zones", "site:unknown"]
        assert (await site_view(w))["zone_id"] == "Z1"
        await produce(b, t.station_zones, [(sid.encode(), jdump(mapping(sid, "depot")))
                                           for sid in (f"D{i}" for i in range(6))]
                      + [(sid.encode(), jdump(mapping(sid, None))) for sid in ("O0", "O1")])
        fleet = Fleet(b, t.meter_values)
        await fleet.rounds(seen, t.commands, 3)
        assert seen.messages[t.commands] == []

        # Sessions start one by one: nothing until the depot would pass 36 kW.
        for i in range(6):
            fleet.want[f"D{i}"] = 11.0
            await fleet.rounds(seen, t.commands, 6)
        cmds = seen.messages[t.commands]
        assert cmds and {c["reason"] for c in cmds} == {"SITE"}
        fleet.apply(cmds)
        limits = {f"D{i}": fleet.limit[f"D{i}"] for i in range(6)}
        assert set(limits.values()) == {6.0}  # equal shares of 36 kW, not first come
        last = {c["station_id"]: c for c in cmds}
        for c in last.values():
            assert all(cl["limit_a"] >= 6.0 for cl in c["connectors"])
        # one command per station per change of who is charging (limiting began at the 4th)
        per_station = {s: sum(1 for c in cmds if c["station_id"] == s) for s in limits}
        assert all(n <= 3 for n in per_station.values()), per_station
        assert longest_over(fleet.depot_kw, 40.0 * 1.05) <= w.settings.compliance_grace_s
        view = await site_view(w)
        assert view["limited"] and sorted(view["stations_limited"]) == sorted(limits)
        assert view["load_kw"] <= THRESHOLD + 0.01

        # Sessions end: every limit released within the hold time.
        n = len(cmds)
        for i in range(6):
            fleet.want[f"D{i}"] = 0.0
        ended = time.time()
        await fleet.rounds(seen, t.commands, int(HOLD_S / ROUND_S) + 4)
        clears = [c for c in seen.messages[t.commands][n:]]
        assert sorted(c["station_id"] for c in clears) == sorted(limits)
        assert all(c["action"] == "CLEAR" for c in clears)
        assert max(c["_seen"] for c in clears) - ended <= HOLD_S + 2.0
        assert not (await site_view(w))["limited"]

        # DR on the zone, with the depot limited again and two stations outside it.
        for sid in fleet.want:
            fleet.want[sid] = 11.0 if sid.startswith("D") else 22.0
        await fleet.rounds(seen, t.commands, 6)
        assert (await site_view(w))["limited"]
        n = len(seen.messages[t.commands])
        now = time.time()
        await produce(b, t.demand_response, [(b"Z1", jdump({
            "signal_id": "DR-S", "zone_id": "Z1", "signal_type": "CURTAIL",
            "target_reduction_pct": 30.0, "start_ts": iso(now), "end_ts": iso(now + 300),
            "priority": 2, "received_ts": iso(now)}))])
        status = await seen.wait(t.dr_status, lambda s: any(x["state"] == "ACTIVE" for x in s))
        active = next(x for x in status if x["state"] == "ACTIVE")
        assert active["baseline_kw"] == pytest.approx(THRESHOLD + 44.0, abs=0.5)
        cap = active["cap_kw"]
        await fleet.rounds(seen, t.commands, 5)
        dr_cmds = [c for c in seen.messages[t.commands][n:] if c["signal_id"] == "DR-S"]
        first = {}
        for c in dr_cmds:
            first.setdefault(c["station_id"], c)
        assert set(first) == set(fleet.want)  # one limit for every station
        assert {first[s]["reason"] for s in first if s.startswith("D")} == {"DR+SITE"}
        assert {first["O0"]["reason"], first["O1"]["reason"]} == {"DR"}
        fleet.apply(seen.messages[t.commands])
        assert sum(fleet.draw(s) for s in fleet.want) <= cap + 0.05
        assert sum(fleet.draw(f"D{i}") for i in range(6)) <= THRESHOLD + 0.05
        assert all(fleet.limit[s] is not None and fleet.limit[s] >= 4.14 - 1e-6
                   for s in fleet.want)


async def test_sites_and_mappings_published_before_the_worker_starts(kafka_broker,
                                                                     unique_prefix, tmp_path):
    """A worker that starts on an existing log reads the sites back before it checks any
    mapping or decides for any zone: no mapping is refused, the depot is limited."""
    b = kafka_broker.bootstrap
    settings = isolated_settings(b, unique_prefix, tmp_path / "data", site_hold_s=HOLD_S)
    t = settings.topics
    from evgrid.topics import ensure_topics
    await ensure_topics(settings)
    await produce(b, t.sites, [(b"depot", jdump(DEPOT))])
    await produce(b, t.station_zones, [(f"D{i}".encode(), jdump(mapping(f"D{i}", "depot")))
                                       for i in range(6)])
    now = time.time()
    await produce(b, t.meter_values, [(f"D{i}".encode(), jdump({
        "station_id": f"D{i}", "connector_id": 1, "connector_type": "Type2",
        "session_id": f"s-D{i}", "power_kw": 11.0, "event_ts": iso(now)})) for i in range(5)])
    w = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await w.wait_ready()
        async with Collector(b, t.commands, t.deadletter) as seen:
            cmds = await seen.wait(t.commands, lambda c: len(c) >= 5)
            assert sorted(c["station_id"] for c in cmds) == [f"D{i}" for i in range(5)]
            assert {(c["reason"], c["target_power_kw"]) for c in cmds} == {("SITE", 7.2)}
            assert seen.messages[t.deadletter] == []
        assert sorted((await site_view(w))["stations"]) == [f"D{i}" for i in range(6)]
        assert w.alive(), w.log_tail()
    finally:
        w.stop()


async def test_two_workers_one_dead_letter_and_the_limits_survive_a_rebalance(
        kafka_broker, unique_prefix, tmp_path):
    """Every worker reads the sites, one dead-letters a bad record; a second worker joining
    takes zones with their sites: the depot stays limited, nobody is commanded again."""
    b = kafka_broker.bootstrap
    settings = isolated_settings(b, unique_prefix, tmp_path / "w1", partitions=4,
                                 site_hold_s=HOLD_S)
    settings2 = settings.model_copy(update={"data_dir": tmp_path / "w2",
                                            "web_port": free_port()})
    t = settings.topics
    w1 = WorkerProcess(settings, tmp_path / "w1.log").start()
    w2 = WorkerProcess(settings2, tmp_path / "w2.log")
    depots = {"Z1": "depot", "Z2": "depot-2", "Z3": "depot-3", "Z4": "depot-4"}
    stations = {f"{zone}-D{i}": zone for zone in depots for i in range(5)}

    async def readings(kw: float) -> None:
        now = time.time()
        await produce(b, t.meter_values, [(s.encode(), jdump({
            "station_id": s, "connector_id": 1, "connector_type": "Type2",
            "session_id": f"s-{s}", "power_kw": kw, "event_ts": iso(now)})) for s in stations])

    try:
        await w1.wait_ready()
        async with Collector(b, t.commands, t.deadletter) as seen:
            await produce(b, t.sites, [(site.encode(), jdump({**DEPOT, "site_id": site,
                                                              "zone_id": zone}))
                                       for zone, site in depots.items()])
            await asyncio.sleep(1.0)
            await produce(b, t.station_zones, [(s.encode(), jdump({
                **mapping(s, depots[zone]), "zone_id": zone})) for s, zone in stations.items()])
            await readings(11.0)
            await seen.wait(t.commands, lambda c: len(c) >= len(stations))
            assert {(c["reason"], c["target_power_kw"]) for c in seen.messages[t.commands]} \
                == {("SITE", 7.2)}
            w2.start()
            await w2.wait_ready()
            for _ in range(10):  # both own partitions now
                if await w1.metric("evgrid_ingest_partitions_loaded_total") == 4 and \
                        await w2.metric("evgrid_ingest_partitions_loaded_total"):
                    break
                await asyncio.sleep(1.0)
            n = len(seen.messages[t.commands])
            await produce(b, t.sites, [(b"depot", jdump({**DEPOT, "zone_id": "Z9"}))])
            await seen.wait(t.deadletter, lambda d: len(d) >= 1)
            for _ in range(6):  # the cars hold their limits; loads keep coming
                await readings(7.2)
                await asyncio.sleep(0.5)
            assert [d["reason"] for d in seen.messages[t.deadletter]] == ["site:two_zones"]
            assert seen.messages[t.commands][n:] == []  # no decision taken twice
            for w in (w1, w2):
                view = await site_view(w)
                assert view["limited"] and len(view["stations_limited"]) == 5, view
        assert w1.alive(), w1.log_tail()
        assert w2.alive(), w2.log_tail()
    finally:
        w2.stop()
        w1.stop()
