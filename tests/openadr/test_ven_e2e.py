"""`evgrid openadr` end to end: a real openleadr VTN (XML signatures
on, certificates made here), the VEN as its own process, the real local Kafka broker and a real
worker (`evgrid worker`). The test plays the stations: it maps them to zones and sends their
readings, and lowers them when the worker's commands arrive; the worker's `grid.zone_load` is
what the VEN reports to the VTN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from openleadr import objects

from evgrid.broker.local import LocalKafka, free_port
from evgrid.openadr.demo_vtn import make_cert
from evgrid.process import WorkerProcess
from evgrid.settings import VenSettings
from evgrid.topics import ensure_topics
from tests.integration.harness import Collector, isolated_settings, positioned
from tests.openadr.dr_contract import DRContract
from tests.openadr.fleet import Fleet, zone_reaches
from tests.openadr.vtn import Vtn

pytestmark = pytest.mark.integration

POLL_S = 1.0
OUTAGE_S = 30.0  # the VTN is gone this long mid-event
VEN = "evgrid-test-ven"
#: The stations the test plays: Z1 (e1, cancelled), Z3 (e2, implicitly cancelled); Z2 is a
#: zone of e1 with no stations (its DR event runs; the shortfall step speaks for it).
STATIONS = {"Z1": {f"S{i}": 50.0 for i in range(1, 5)}, "Z3": {"T1": 40.0, "T2": 40.0}}


class Topic:
    """Every message on grid.demand_response, with when it arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.changed = asyncio.Condition()
        self.positioned = asyncio.Event()  # every partition assigned, its position known

    async def run(self, bootstrap: str, topic: str) -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=20,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            await positioned(consumer, [topic])
            self.positioned.set()
            async for record in consumer:
                message = orjson.loads(record.value)
                assert record.key.decode() == message["zone_id"]
                DRContract.model_validate(message)
                async with self.changed:
                    self.messages.append((time.monotonic(), message))
                    self.changed.notify_all()
        finally:
            await consumer.stop()

    def of(self, signal_id: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["signal_id"] == signal_id]

    async def wait(self, signal_id: str, count: int, timeout: float) -> list[dict[str, Any]]:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: len(self.of(signal_id)) >= count), timeout)
        return self.of(signal_id)


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/metrics") as response:
        return await response.text()


async def get_health(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/health") as response:
        return response.status, await response.json()


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def simple(level: int, start: datetime, minutes: float = 10) -> list[objects.Interval]:
    return [objects.Interval(dtstart=start, duration=timedelta(minutes=minutes),
                             signal_payload=level)]


def of_zone(commands: list[dict[str, Any]], zone_id: str, action: str) -> list[dict[str, Any]]:
    return [c for c in commands if c["zone_id"] == zone_id and c["action"] == action]


def status_of(statuses: list[dict[str, Any]], signal_id: str,
              zone_id: str) -> list[dict[str, Any]]:
    return [s for s in statuses if s["signal_id"] == signal_id and s["zone_id"] == zone_id]


def last_status(statuses: list[dict[str, Any]], signal_id: str, zone_id: str) -> dict[str, Any]:
    """The newest grid.dr_status of one event in one zone ({} before the first)."""
    return (status_of(statuses, signal_id, zone_id) or [{}])[-1]


async def test_ven_against_a_signing_vtn(kafka_broker: LocalKafka, unique_prefix: str,
                                         tmp_path: Path) -> None:
    vtn_cert, ven_cert = make_cert(tmp_path, "vtn"), make_cert(tmp_path, "ven")
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"ven_id": {"ven-1": ["Z1", "Z2"]}, "group_id": {"g3": "Z3"}}))
    web_port = free_port()
    # The worker samples zone loads every 0.5 s (grid.zone_load); the compliance grace is
    # longer than the test, which is about the VEN, not about non-compliance.
    worker_settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                        history_step_s=0.5, compliance_grace_s=300.0)
    settings = worker_settings.derive(VenSettings, **dict(
        openadr_vtn_url=None, openadr_ven_name=VEN, openadr_cert=ven_cert.cert,
        openadr_key=ven_cert.key, openadr_vtn_fingerprint=vtn_cert.fingerprint,
        openadr_targets_file=targets, openadr_poll_interval_s=POLL_S,
        openadr_retry_max_s=2.0, openadr_web_port=web_port))
    t = settings.topics
    await ensure_topics(settings)
    vtn = Vtn(port=free_port(), cert=vtn_cert, ven_name=VEN, ven_fingerprint=ven_cert.fingerprint)
    server = vtn.build()
    env = {**os.environ, **settings.model_copy(update={"openadr_vtn_url": vtn.url}).to_env()}
    log_path = tmp_path / "ven.log"
    topic = Topic()
    consumer = asyncio.create_task(topic.run(kafka_broker.bootstrap, t.demand_response))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
    fleet = Fleet(settings, STATIONS)
    seen = Collector(kafka_broker.bootstrap, t.commands, t.dr_status)
    await seen.__aenter__()
    worker = WorkerProcess(worker_settings, tmp_path / "worker.log").start()
    with log_path.open("wb") as log:
        ven = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "evgrid", "openadr", env=env, stdout=log, stderr=log)
    started = last = time.monotonic()

    def lap(stage: str) -> None:  # figures for the report, never asserted
        nonlocal last
        now_s = time.monotonic()
        print(f"  {stage}: {now_s - last:.1f}s (total {now_s - started:.1f}s)")
        last = now_s

    try:
        # 0. The worker comes up (meanwhile the VEN tries a VTN that is not up yet); the
        # stations join their zones and report their load.
        await worker.wait_ready()
        await fleet.map()
        await fleet.report()
        await zone_reaches(worker, "Z1", 200.0, 15)
        await zone_reaches(worker, "Z3", 80.0, 15)

        lap("worker ready, stations reporting")

        # 1. The VEN starts before the VTN, and registers once the VTN is up.
        await until(lambda: log_path.read_text().count("not available for registration") >= 1,
                    20, "the VEN to try a VTN that is not up yet")
        await vtn.start()
        await asyncio.wait_for(vtn.registered.wait(), 10)

        lap("registered after the VTN came up")

        # 2. An event becomes a DR event per zone, and the worker's commands, within one poll
        # interval + 1 s; optIn. The test's own readers are positioned first: the clock
        # measures the VEN and the worker, not a reader still waiting for a new topic's leader.
        await asyncio.wait_for(topic.positioned.wait(), 30)
        await seen.positioned()
        now = datetime.now(UTC)
        opted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        added, added_wall = time.monotonic(), time.time()
        server.add_event(vtn.ven_id, "SIMPLE", "level", simple(2, now), event_id="e1",
                         callback=opted)
        first = await topic.wait("oadr:e1", 2, POLL_S + 1.0)
        print(f"\nVTN event -> grid.demand_response: {time.monotonic() - added:.2f}s")
        sets = await seen.wait(t.commands, lambda c: len(of_zone(c, "Z1", "SET")) >= 4,
                               timeout=POLL_S + 1.0)
        e1_sets = of_zone(sets, "Z1", "SET")
        to_commands = max(c["_seen"] for c in e1_sets) - added_wall
        print(f"VTN event -> commands: {to_commands:.2f}s")
        assert to_commands <= POLL_S + 1.0
        assert sorted((m["zone_id"], m["signal_type"], m["target_reduction_pct"])
                      for m in first) == [("Z1", "CURTAIL", 50.0), ("Z2", "CURTAIL", 50.0)]
        assert first[0]["priority"] == 1  # openleadr's default priority 0 -> emergency
        assert {c["station_id"] for c in e1_sets} == fleet.in_zone("Z1")
        assert {c["signal_id"] for c in e1_sets} == {"oadr:e1"}
        assert sum(c["target_power_kw"] for c in e1_sets) == pytest.approx(100.0, abs=0.1)
        active = await seen.wait(t.dr_status, lambda s: any(
            x["state"] == "ACTIVE" for x in status_of(s, "oadr:e1", "Z1")), timeout=5)
        z1_status = [x for x in status_of(active, "oadr:e1", "Z1") if x["state"] == "ACTIVE"]
        assert (z1_status[-1]["baseline_kw"], z1_status[-1]["cap_kw"]) == (200.0, 100.0)
        assert await asyncio.wait_for(opted, 5) == "optIn"

        lap("event published, commands, optIn")

        # 3. Reports: the worker's zone load reaches the VTN's callback, as W. The VTN sees
        # the uncurtailed 200 kW; the stations then obey their SETs, and it sees the load fall.
        def usage() -> list[tuple[Any, float]]:
            return list(vtn.reports.get("Z1.RealPower", []))

        await until(lambda: any(v == 200_000.0 for _, v in usage()), 10,
                    "the VTN to receive the worker's 200 kW")
        before = len(usage())
        commanded_at = max(datetime.fromisoformat(c["command_ts"]) for c in e1_sets)
        obeyed = time.monotonic()
        await fleet.obey(e1_sets)
        await until(lambda: any(v <= 100_000.0 for _, v in usage()[before:]), 10,
                    "the VTN to receive the curtailed zone load (<= the 100 kW cap)")
        print(f"lowered readings -> the VTN's power_real: {time.monotonic() - obeyed:.2f}s")
        values = usage()
        high = max(i for i, (_, v) in enumerate(values) if v == 200_000.0)
        low = min(i for i, (_, v) in enumerate(values) if v <= 100_000.0)
        assert high < low
        assert values[low][1] == 100_000.0  # the stations draw exactly their targets
        assert values[low][0] > commanded_at  # a reading taken after the curtailment
        assert all(v <= 100_000.0 for _, v in values[low:])  # and it stays down
        await until(lambda: 1.0 in [v for _, v in vtn.reports.get("Z1.Status", [])], 10,
                    "a TELEMETRY_STATUS report (online = 1)")

        lap("reports received, the load falls")

        # A zone that cannot reach its cap (the engine reports a shortfall) -> optOut with
        # the reason; back to optIn once it closes. Bad input on the topic is counted. (Z2 has
        # no stations, so the worker never moves its status: the test speaks for the engine.)
        async def dr_status(shortfall_kw: float) -> None:
            status = {"signal_id": "oadr:e1", "zone_id": "Z2", "state": "ACTIVE",
                      "shortfall_kw": shortfall_kw}
            await producer.send_and_wait(t.dr_status, orjson.dumps(status), key=b"Z2")

        await producer.send_and_wait(t.dr_status, b"{not json", key=b"Z2")
        await dr_status(12.5)
        await until(lambda: vtn.opts["e1"][-1:] == ["optOut"], 5, "optOut on a shortfall")
        assert any("zone Z2 short by 12.5 kW" in r["response_description"]
                   for r in vtn.created_event_responses if r["event_id"] == "e1")
        await dr_status(0.0)
        await until(lambda: vtn.opts["e1"][-1:] == ["optIn"], 5, "optIn once it closes")
        text = await scrape(web_port)
        assert metric(text, f'evgrid_openadr_rejected_total{{reason="not_json",source='
                            f'"{t.dr_status}"}}') == 1

        lap("shortfall optOut / optIn")

        # 4. A modification (level 3) updates the event: same signal_id, later received_ts,
        # and the worker's cap for it changes (50 % -> SHED 100 %: 100 kW -> 0 kW).
        n_commands = len(seen.messages[t.commands])
        event = next(e for e in server.events[vtn.ven_id]
                     if e.event_descriptor.event_id == "e1")
        event.event_signals[0].intervals[0].signal_payload = 3
        event.event_descriptor.modification_number += 1
        server.events_updated[vtn.ven_id] = True
        modified = (await topic.wait("oadr:e1", 4, POLL_S + 3.0))[2:]
        assert {(m["signal_type"], m["target_reduction_pct"]) for m in modified} == {
            ("SHED", 100.0)}
        assert min(m["received_ts"] for m in modified) > max(m["received_ts"] for m in first)
        await seen.wait(t.dr_status, lambda s: last_status(s, "oadr:e1", "Z1").get("cap_kw")
                        == 0.0, timeout=5)
        caps = [x["cap_kw"] for x in status_of(seen.messages[t.dr_status], "oadr:e1", "Z1")
                if x["state"] == "ACTIVE"]
        assert caps.index(100.0) < caps.index(0.0)
        shed = await seen.wait(t.commands, lambda c: len(of_zone(c[n_commands:], "Z1", "SET"))
                               >= 4, timeout=5)
        shed = of_zone(shed[n_commands:], "Z1", "SET")
        assert {(c["station_id"], c["target_power_kw"]) for c in shed} == {
            (sid, 0.0) for sid in fleet.in_zone("Z1")}
        await fleet.obey(shed)
        await until(lambda: any(v == 0.0 for _, v in usage()), 10,
                    "the VTN to receive the shed zone load (0 W)")

        lap("modification: cap 100 -> 0 kW")

        # 5. Bad events: unknown targets and an unknown signal -> optOut, nothing published.
        unknown: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        price: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server.add_event(vtn.ven_id, "SIMPLE", "level", simple(1, now), event_id="e-unknown",
                         target={"party_id": "nobody"}, callback=unknown)
        server.add_event(vtn.ven_id, "ELECTRICITY_PRICE", "price", simple(1, now),
                         event_id="e-price", callback=price)
        assert await asyncio.wait_for(unknown, 5) == "optOut"
        assert await asyncio.wait_for(price, 5) == "optOut"
        reasons = {r["event_id"]: r["response_description"] for r in vtn.created_event_responses}
        assert "party_id=nobody" in reasons["e-unknown"]
        assert "no supported signal" in reasons["e-price"]

        lap("unknown target / signal optOut")

        # 6. The VTN goes away mid-event: the event is not ended, and polling resumes.
        await vtn.stop()
        down_at = time.monotonic()
        connected = f'evgrid_openadr_connected{{ven="{VEN}"}}'
        while metric(await scrape(web_port), connected) != 0.0:
            assert time.monotonic() - down_at < POLL_S + 12, "the VEN never noticed the outage"
            await asyncio.sleep(0.2)
        status, health = await get_health(web_port)
        assert (status, health["connected"]) == (503, False)
        assert health["events"] == ["e-price", "e-unknown", "e1"]  # none forgotten
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert [m["signal_type"] for m in topic.of("oadr:e1")] == ["CURTAIL"] * 2 + ["SHED"] * 2
        assert of_zone(seen.messages[t.commands], "Z1", "CLEAR") == []  # still curtailed
        assert last_status(seen.messages[t.dr_status], "oadr:e1", "Z1")["state"] == "ACTIVE"
        age = metric(await scrape(web_port), f'evgrid_openadr_last_poll_age_seconds{{ven="{VEN}"}}')
        assert age >= OUTAGE_S - 1
        polls = vtn.polls
        await vtn.start()
        await until(lambda: vtn.polls > polls + 1, 10, "polling to resume")
        text = await scrape(web_port)
        assert metric(text, connected) == 1.0
        status, health = await get_health(web_port)
        assert (status, health["connected"], health["registered"]) == (200, True, True)
        assert metric(text, f'evgrid_openadr_last_poll_age_seconds{{ven="{VEN}"}}') < 5

        lap("outage and resumed polling")

        # 7. cancel_event -> RESTORE for both zones, and a CLEAR for every station of Z1.
        # e2 has two intervals: level 1 for 3 s, then level 2; the second updates the event.
        now2 = datetime.now(UTC)
        server.add_event(vtn.ven_id, "SIMPLE", "level",
                         simple(1, now2, minutes=0.05) + simple(2, now2 + timedelta(seconds=3)),
                         event_id="e2", target={"group_id": "g3"})
        await topic.wait("oadr:e2", 1, POLL_S + 3.0)
        await until(lambda: "e2" in vtn.opts, 5, "the VEN's answer to e2")  # then change e1
        answers = len(vtn.opts["e1"])
        server.cancel_event(vtn.ven_id, "e1")
        restored = (await topic.wait("oadr:e1", 6, POLL_S + 3.0))[4:]
        assert sorted((m["zone_id"], m["signal_type"]) for m in restored) == [
            ("Z1", "RESTORE"), ("Z2", "RESTORE")]
        cleared = await seen.wait(t.commands, lambda c: len(of_zone(c, "Z1", "CLEAR")) >= 4,
                                  timeout=5)
        assert sorted(c["station_id"] for c in of_zone(cleared, "Z1", "CLEAR")) == sorted(
            fleet.in_zone("Z1"))
        assert {c["signal_id"] for c in of_zone(cleared, "Z1", "CLEAR")} == {"oadr:e1"}
        await seen.wait(t.dr_status, lambda s: last_status(s, "oadr:e1", "Z1").get("state")
                        == "ENDED", timeout=5)

        lap("cancel -> RESTORE, CLEARs")

        # 8. Implied cancellation: e2 vanishes from the VTN's distribution -> RESTORE, and
        # the worker clears Z3's stations.
        stepped = await topic.wait("oadr:e2", 2, 5)
        assert [m["target_reduction_pct"] for m in stepped] == [25.0, 50.0]
        assert stepped[0]["end_ts"] == stepped[1]["end_ts"]  # the last interval's end
        e2_sets = await seen.wait(t.commands, lambda c: {x["station_id"] for x in of_zone(
            c, "Z3", "SET")} == fleet.in_zone("Z3"), timeout=5)
        assert of_zone(e2_sets, "Z3", "CLEAR") == []
        await until(lambda: len(vtn.opts["e1"]) > answers, 5, "the VEN's answer to the cancel")
        server.events[vtn.ven_id] = [e for e in server.events[vtn.ven_id]
                                     if e.event_descriptor.event_id != "e2"]
        server.events_updated[vtn.ven_id] = True
        implied = await topic.wait("oadr:e2", 3, POLL_S + 3.0)
        assert [(m["zone_id"], m["signal_type"]) for m in implied] == [
            ("Z3", "CURTAIL"), ("Z3", "CURTAIL"), ("Z3", "RESTORE")]
        cleared = await seen.wait(t.commands, lambda c: len(of_zone(c, "Z3", "CLEAR")) >= 2,
                                  timeout=5)
        assert sorted(c["station_id"] for c in of_zone(cleared, "Z3", "CLEAR")) == ["T1", "T2"]
        assert {c["signal_id"] for c in of_zone(cleared, "Z3", "CLEAR")} == {"oadr:e2"}
        await seen.wait(t.dr_status, lambda s: last_status(s, "oadr:e2", "Z3").get("state")
                        == "ENDED", timeout=5)

        lap("implied cancellation -> RESTORE, CLEARs")

        # 9. Unsigned, then malformed payloads: rejected, counted, never acted on.
        vtn.send_unsigned()
        server.add_event(vtn.ven_id, "SIMPLE", "level", simple(2, now), event_id="e3",
                         target={"group_id": "g3"})
        await until(lambda: not server.events_updated[vtn.ven_id], 5, "the unsigned poll")
        vtn.send_malformed()
        server.events_updated[vtn.ven_id] = True
        await until(lambda: not server.events_updated[vtn.ven_id], 5, "the malformed poll")
        text = await scrape(web_port)
        vtn.send_signed()
        assert metric(text, 'evgrid_openadr_rejected_total{reason="unsigned",source="vtn"}') >= 1
        assert metric(text,
                      'evgrid_openadr_rejected_total{reason="schema_invalid",source="vtn"}') >= 1
        await asyncio.sleep(POLL_S + 0.5)
        assert topic.of("oadr:e3") == []
        assert topic.of("oadr:e-unknown") == [] and topic.of("oadr:e-price") == []
        commands = seen.messages[t.commands]
        assert {c["signal_id"] for c in commands} == {"oadr:e1", "oadr:e2"}
        assert len({c["command_id"] for c in commands}) == len(commands)  # no duplicates
        lap("unsigned and malformed payloads rejected")
        ven.terminate()
        assert await asyncio.wait_for(ven.wait(), 10) == 0  # SIGTERM is a clean stop
        assert worker.alive(), worker.log_tail()
    finally:
        vtn.send_signed()
        if ven.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                ven.terminate()
            await asyncio.wait_for(ven.wait(), 10)
        worker.terminate()
        consumer.cancel()
        await seen.__aexit__(None, None, None)
        await producer.stop()
        with contextlib.suppress(Exception):
            await vtn.stop()
        vtn.close()
        worker.stop()
        print(log_path.read_text()[-4000:])
