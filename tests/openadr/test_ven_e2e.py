"""`evgrid openadr` end to end: a real openleadr VTN (XML signatures on, certificates made
here), the VEN as its own process, the real local Kafka broker.

The worker's side of `grid.zone_load` is not in this branch: the test publishes the zone load
itself, so it checks the VEN's reports, not the worker's figures.
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
from evgrid.models.outputs import zone_load_report
from evgrid.openadr.demo_vtn import make_cert
from evgrid.settings import Settings
from evgrid.topics import ensure_topics
from tests.openadr.dr_contract import DRContract
from tests.openadr.vtn import Vtn

pytestmark = pytest.mark.integration

POLL_S = 1.0
OUTAGE_S = 30.0  # the figure: the VTN is gone this long mid-event
VEN = "evgrid-test-ven"


class Topic:
    """Every message on grid.demand_response, with when it arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.changed = asyncio.Condition()

    async def run(self, bootstrap: str, topic: str) -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=20,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
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


async def test_ven_against_a_signing_vtn(kafka_broker: LocalKafka, unique_prefix: str,
                                         tmp_path: Path) -> None:
    vtn_cert, ven_cert = make_cert(tmp_path, "vtn"), make_cert(tmp_path, "ven")
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"ven_id": {"ven-1": ["Z1", "Z2"]}, "group_id": {"g3": "Z3"}}))
    web_port = free_port()
    settings = Settings(broker=kafka_broker.bootstrap, partitions=2).with_topic_prefix(
        unique_prefix).model_copy(update=dict(
            openadr_vtn_url=None, openadr_ven_name=VEN, openadr_cert=ven_cert.cert,
            openadr_key=ven_cert.key, openadr_vtn_fingerprint=vtn_cert.fingerprint,
            openadr_targets_file=targets, openadr_poll_interval_s=POLL_S,
            openadr_retry_max_s=2.0, openadr_web_port=web_port))
    await ensure_topics(settings)
    vtn = Vtn(port=free_port(), cert=vtn_cert, ven_name=VEN, ven_fingerprint=ven_cert.fingerprint)
    server = vtn.build()
    env = {**os.environ, **settings.model_copy(update={"openadr_vtn_url": vtn.url}).to_env()}
    log_path = tmp_path / "ven.log"
    topic = Topic()
    consumer = asyncio.create_task(topic.run(kafka_broker.bootstrap,
                                             settings.topics.demand_response))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
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
        # 1. The VEN starts before the VTN, and registers once the VTN is up.
        await until(lambda: log_path.read_text().count("not available for registration") >= 1,
                    20, "the VEN to try a VTN that is not up yet")
        await vtn.start()
        await asyncio.wait_for(vtn.registered.wait(), 10)

        lap("registered after the VTN came up")

        # 2. An event becomes a DR event per zone within one poll interval + 1 s; optIn.
        now = datetime.now(UTC)
        opted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        added = time.monotonic()
        server.add_event(vtn.ven_id, "SIMPLE", "level", simple(2, now), event_id="e1",
                         callback=opted)
        first = await topic.wait("oadr:e1", 2, POLL_S + 1.0)
        print(f"\nVTN event -> grid.demand_response: {time.monotonic() - added:.2f}s")
        assert sorted((m["zone_id"], m["signal_type"], m["target_reduction_pct"])
                      for m in first) == [("Z1", "CURTAIL", 50.0), ("Z2", "CURTAIL", 50.0)]
        assert first[0]["priority"] == 1  # openleadr's default priority 0 -> emergency
        assert await asyncio.wait_for(opted, 5) == "optIn"

        lap("event published, optIn")

        # 3. Reports: the zone load from grid.zone_load reaches the VTN's callback, as W.
        async def zone_load(kw: float) -> None:
            report = zone_load_report({"zone_id": "Z1", "zone_total_power_kw": kw,
                                       "zone_capacity_kw": 300.0, "stations_active": 4},
                                      time.time(), cap_kw=150.0)
            await producer.send_and_wait(settings.topics.zone_load, report.model_dump_json()
                                         .encode(), key=b"Z1")

        def usage() -> list[float]:
            return [v for _, v in vtn.reports.get("Z1.RealPower", [])]

        await zone_load(200.0)
        await until(lambda: 200_000.0 in usage(), 10, "the VTN to receive 200 kW")
        await zone_load(140.0)
        await until(lambda: 140_000.0 in usage(), 10, "the VTN to receive 140 kW")
        assert usage().index(200_000.0) < usage().index(140_000.0)
        await until(lambda: 1.0 in [v for _, v in vtn.reports.get("Z1.Status", [])], 10,
                    "a TELEMETRY_STATUS report (online = 1)")

        lap("reports received")

        # A zone that cannot reach its cap (the engine reports a shortfall) -> optOut with
        # the reason; back to optIn once it closes. Bad input on the topic is counted.
        async def dr_status(shortfall_kw: float) -> None:
            status = {"signal_id": "oadr:e1", "zone_id": "Z2", "state": "ACTIVE",
                      "shortfall_kw": shortfall_kw}
            await producer.send_and_wait(settings.topics.dr_status, orjson.dumps(status),
                                         key=b"Z2")

        await producer.send_and_wait(settings.topics.dr_status, b"{not json", key=b"Z2")
        await dr_status(12.5)
        await until(lambda: vtn.opts["e1"][-1:] == ["optOut"], 5, "optOut on a shortfall")
        assert any("zone Z2 short by 12.5 kW" in r["response_description"]
                   for r in vtn.created_event_responses if r["event_id"] == "e1")
        await dr_status(0.0)
        await until(lambda: vtn.opts["e1"][-1:] == ["optIn"], 5, "optIn once it closes")
        text = await scrape(web_port)
        assert metric(text, f'evgrid_openadr_rejected_total{{reason="not_json",source='
                            f'"{settings.topics.dr_status}"}}') == 1

        lap("shortfall optOut / optIn")

        # 4. A modification (level 3) updates the event: same signal_id, later received_ts.
        event = next(e for e in server.events[vtn.ven_id]
                     if e.event_descriptor.event_id == "e1")
        event.event_signals[0].intervals[0].signal_payload = 3
        event.event_descriptor.modification_number += 1
        server.events_updated[vtn.ven_id] = True
        modified = (await topic.wait("oadr:e1", 4, POLL_S + 3.0))[2:]
        assert {(m["signal_type"], m["target_reduction_pct"]) for m in modified} == {
            ("SHED", 100.0)}
        assert min(m["received_ts"] for m in modified) > max(m["received_ts"] for m in first)

        lap("modification")

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

        # 7. cancel_event -> RESTORE for both zones.
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

        lap("cancel -> RESTORE")

        # 8. Implied cancellation: e2 vanishes from the VTN's distribution -> RESTORE.
        stepped = await topic.wait("oadr:e2", 2, 5)
        assert [m["target_reduction_pct"] for m in stepped] == [25.0, 50.0]
        assert stepped[0]["end_ts"] == stepped[1]["end_ts"]  # the last interval's end
        await until(lambda: len(vtn.opts["e1"]) > answers, 5, "the VEN's answer to the cancel")
        server.events[vtn.ven_id] = [e for e in server.events[vtn.ven_id]
                                     if e.event_descriptor.event_id != "e2"]
        server.events_updated[vtn.ven_id] = True
        implied = await topic.wait("oadr:e2", 3, POLL_S + 3.0)
        assert [(m["zone_id"], m["signal_type"]) for m in implied] == [
            ("Z3", "CURTAIL"), ("Z3", "CURTAIL"), ("Z3", "RESTORE")]

        lap("implied cancellation")

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
        lap("unsigned and malformed payloads rejected")
        ven.terminate()
        assert await asyncio.wait_for(ven.wait(), 10) == 0  # SIGTERM is a clean stop
    finally:
        vtn.send_signed()
        if ven.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                ven.terminate()
            await asyncio.wait_for(ven.wait(), 10)
        consumer.cancel()
        await producer.stop()
        with contextlib.suppress(Exception):
            await vtn.stop()
        vtn.close()
        print(log_path.read_text()[-4000:])
