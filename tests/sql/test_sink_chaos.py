"""Faults under the sink, with records streaming in: the sink killed with SIGKILL mid-batch
and restarted, PostgreSQL crashed and restarted under it. Afterwards every record in Kafka is
one row in PostgreSQL: none lost, none twice."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from evgrid import codec
from evgrid.broker.local import free_port
from evgrid.settings import SqlSettings
from evgrid.sql.local import LocalPostgres
from evgrid.sql.process import SinkProcess
from evgrid.topics import ensure_topics
from tests.chaos.report import ChaosRow, record
from tests.sql import fleet

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

#: table -> its key, for the duplicate check
KEYS = {"commands": "command_id", "zone_load": "zone_id, ts",
        "dr_status_history": "kafka_topic, kafka_partition, kafka_offset"}


class Stream:
    """Commands, zone loads and DR statuses produced at a steady pace until stopped."""

    def __init__(self, settings: SqlSettings) -> None:
        self.settings = settings
        self.sent = {table: 0 for table in KEYS}
        self.stop = asyncio.Event()

    async def run(self, per_step: int = 10, pause_s: float = 0.02) -> None:
        t = self.settings.topics
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers,
                                    linger_ms=5)
        await producer.start()
        i = 0
        try:
            while not self.stop.is_set():
                pending = []
                for _ in range(per_step):
                    zone = f"Z{i % 7}"
                    station = f"S{i % 50}"
                    pending.append(await producer.send(t.commands, codec.dumps(fleet.command(
                        f"cmd-{i}", "E1", zone, station, i * 0.001, 11.0)),
                        key=station.encode()))
                    pending.append(await producer.send(t.zone_load, codec.dumps(
                        fleet.zone_load(zone, i * 0.001, 40.0, 100.0, 5)), key=zone.encode()))
                    if i % 3 == 0:
                        pending.append(await producer.send(t.dr_status, codec.dumps(
                            fleet.status(f"E{i}", zone, "ACTIVE", 100, cap=50.0)),
                            key=zone.encode()))
                        self.sent["dr_status_history"] += 1
                    self.sent["commands"] += 1
                    self.sent["zone_load"] += 1
                    i += 1
                await asyncio.gather(*pending)
                await asyncio.sleep(pause_s)
        finally:
            await producer.stop()

    @property
    def total(self) -> int:
        return sum(self.sent.values())


async def rows_and_duplicates(dsn: str) -> tuple[dict[str, int], int]:
    conn = await asyncpg.connect(dsn)
    try:
        counts, dupes = {}, 0
        for table, key in KEYS.items():
            counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
            dupes += await conn.fetchval(
                f"SELECT count(*) - count(DISTINCT ({key})) FROM {table}")
        return counts, dupes
    finally:
        await conn.close()


async def written(dsn: str) -> int:
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        return sum((await rows_and_duplicates(dsn))[0].values())
    return 0


async def wait_for_rows(dsn: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (n := await written(dsn)) < at_least:
        assert time.monotonic() < deadline, f"{n} rows of {at_least} after {timeout}s"
        await asyncio.sleep(0.02)
    return n


async def health(sink: SinkProcess) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(sink.url + "/health") as resp:
        return resp.status, await resp.json()


async def wait_for_health(sink: SinkProcess, status: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got, body = await health(sink)
        if got == status:
            return body
        assert time.monotonic() < deadline, f"/health still {got} {body} after {timeout}s"
        await asyncio.sleep(0.05)


@pytest.fixture
def chaos_settings(sql_settings: SqlSettings) -> SqlSettings:
    return sql_settings.model_copy(update={"sql_batch_max": 100, "sql_web_port": free_port()})


async def test_sink_killed_mid_batch_loses_and_duplicates_nothing(
        chaos_settings: SqlSettings, sql_dsn: str, tmp_path) -> None:
    await ensure_topics(chaos_settings)
    stream = Stream(chaos_settings)
    producing = asyncio.create_task(stream.run())
    sink = SinkProcess(chaos_settings, tmp_path / "sink.log").start()
    kills = 0
    try:
        await sink.wait_ready()
        for _ in range(2):  # killed twice while it writes batch after batch
            seen = await written(sql_dsn)
            await wait_for_rows(sql_dsn, seen + 200, timeout=60)
            sink.kill()
            kills += 1
            sink.start()
            await sink.wait_ready()
        await wait_for_rows(sql_dsn, await written(sql_dsn) + 200, timeout=60)
    finally:
        stream.stop.set()
        await producing
    try:
        await wait_for_rows(sql_dsn, stream.total, timeout=60)
        counts, dupes = await rows_and_duplicates(sql_dsn)
        async with aiohttp.ClientSession() as http, http.get(sink.url + "/metrics") as resp:
            exposition = await resp.text()
    finally:
        sink.stop()
    for name in ("evgrid_sql_rows_total", "evgrid_sql_consumer_lag",
                 "evgrid_sql_last_commit_age_seconds", "evgrid_sql_rows_per_second",
                 "evgrid_sql_freshness_seconds_bucket"):
        assert name in exposition, name
    record(ChaosRow("SQL sink killed mid-batch", f"sink kill -9 ×{kills}, restarted",
                    stream.total, sum(counts.values()), duplicates_new_id=dupes))
    assert counts == stream.sent
    assert dupes == 0


async def test_postgres_restarted_under_the_sink_loses_nothing(
        chaos_settings: SqlSettings, sql_dsn: str, postgres: LocalPostgres, tmp_path) -> None:
    await ensure_topics(chaos_settings)
    stream = Stream(chaos_settings)
    producing = asyncio.create_task(stream.run())
    sink = SinkProcess(chaos_settings, tmp_path / "sink.log").start()
    try:
        await sink.wait_ready()
        await wait_for_rows(sql_dsn, 200, timeout=60)
        assert (await health(sink))[0] == 200
        # A crash (immediate shutdown: recovery from the write-ahead log), 3 s down while
        # records keep coming, then up again on the same port.
        restart = asyncio.create_task(asyncio.to_thread(postgres.restart, "immediate", 3.0))
        down = await wait_for_health(sink, 503, timeout=10)
        assert down["database_up"] is False
        await restart
        up = await wait_for_health(sink, 200, timeout=30)
        assert up["database_up"] is True
        await wait_for_rows(sql_dsn, await written(sql_dsn) + 200, timeout=60)
    finally:
        stream.stop.set()
        await producing
    try:
        await wait_for_rows(sql_dsn, stream.total, timeout=60)
        counts, dupes = await rows_and_duplicates(sql_dsn)
    finally:
        sink.stop()
    log = sink.log_tail(100_000)
    record(ChaosRow("SQL sink, PostgreSQL restarted", "PostgreSQL crash + 3 s down",
                    stream.total, sum(counts.values()), duplicates_new_id=dupes))
    assert counts == stream.sent
    assert dupes == 0
    # One line when it was lost and one when it was back, whatever the number of retries.
    assert log.count("PostgreSQL unavailable") == 1, log
    assert log.count("PostgreSQL available again") == 1, log
