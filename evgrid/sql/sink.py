"""`evgrid sql`: evgrid's outputs from Kafka into PostgreSQL, beside the worker.

One consumer group (`<app_id>-sql`) reads every output topic from the earliest offset; each
fetched batch becomes one database transaction, and the batch's offsets are committed to Kafka
only after that transaction has committed. A crash between the two replays the batch, and
every table's key makes the replay write nothing: exactly once in effect. While PostgreSQL is
down the batch in hand waits (the consumer fetches nothing more), so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from evgrid.codec import DecodeError
from evgrid.metrics import DEADLETTERS
from evgrid.probes import serve_probes
from evgrid.settings import SqlSettings
from evgrid.sql import metrics
from evgrid.sql.database import REFUSED, Database, redacted
from evgrid.sql.rows import Row, Source, decoders, published

log = logging.getLogger("evgrid.sql")

RETENTION_EVERY_S = 3600.0
RATE_WINDOW_S = 10.0


class Sink:
    def __init__(self, settings: SqlSettings) -> None:
        self.settings = settings
        self.db = Database(settings.sql_dsn, settings.sql_retention_days)
        self.decoders = decoders(settings)
        self.consumer: AIOKafkaConsumer | None = None
        self.stopping = asyncio.Event()
        self.last_commit: float | None = None  # monotonic
        self.records_committed = 0
        self.next_offset: dict[TopicPartition, int] = {}
        self._recent: deque[tuple[float, int]] = deque()
        self._retention_at = 0.0
        metrics.LAST_COMMIT_AGE.set_function(self.last_commit_age)
        metrics.DATABASE_UP.set_function(lambda: 1.0 if self.db.up else 0.0)

    def last_commit_age(self) -> float:
        return float("nan") if self.last_commit is None else time.monotonic() - self.last_commit

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> bool:
        """Schema first (waiting for PostgreSQL), then the consumer; False if stopped first."""
        from evgrid.topics import ensure_topics

        await ensure_topics(self.settings)
        if await self.db.migrate(self.stopping) is None:
            return False
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            *self.decoders, bootstrap_servers=s.bootstrap_servers, group_id=s.sql_group,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100,
            session_timeout_ms=int(s.broker_session_timeout_s * 1000),
            rebalance_timeout_ms=int(s.broker_rebalance_timeout_s * 1000),
            max_partition_fetch_bytes=s.max_message_bytes + 65_536, **s.kafka_client_kwargs())
        await self.consumer.start()
        return True

    async def run(self) -> None:
        if not await self.start():
            return
        try:
            while not self.stopping.is_set():
                await self.step()
        finally:
            await self.close()

    async def close(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
        await self.db.close()

    # -- one batch -----------------------------------------------------------------------------

    async def step(self) -> int:
        """Fetch, write in one transaction, then commit the offsets; records committed."""
        assert self.consumer is not None
        try:
            batch = await self.consumer.getmany(timeout_ms=200,
                                                max_records=self.settings.sql_batch_max)
        except KafkaError as exc:  # the broker's outage is logged by evgrid.logs
            log.debug("fetch: %r", exc)
            await asyncio.sleep(1.0)
            return 0
        if batch:
            done = await self._write(batch)
        else:
            done = 0
        self._update_gauges()
        if time.monotonic() - self._retention_at >= RETENTION_EVERY_S:
            self._retention_at = time.monotonic()
            removed = await self.db.apply_retention(datetime.now(UTC), self.stopping)
            for table, n in removed.items():
                metrics.RETENTION.labels(table).inc(n)
                if n:
                    log.info("retention: removed %d %s from %s", n,
                             "partitions" if table in ("station_windows", "zone_load")
                             else "rows", table)
        return done

    async def _write(self, batch: dict[TopicPartition, list[Any]]) -> int:
        rows: dict[str, list[Row]] = defaultdict(list)
        per_record: list[tuple[str, list[tuple[str, Row]]]] = []
        offsets: dict[TopicPartition, int] = {}
        stamps: list[tuple[str, int]] = []
        limit = self.settings.max_message_bytes
        for tp, records in batch.items():
            decode = self.decoders[tp.topic]
            for record in records:
                offsets[tp] = record.offset + 1
                if record.value is None:  # a tombstone: nothing to record
                    continue
                src = Source(tp.topic, tp.partition, record.offset, published(record.timestamp))
                try:
                    made = decode(record.value, src, limit)
                except DecodeError as exc:
                    DEADLETTERS.labels(tp.topic, exc.reason).inc()
                    log.warning("skipped %s[%d]@%d: %s", tp.topic, tp.partition, record.offset,
                                exc.error)
                    continue
                for table, row in made:
                    rows[table].append(row)
                per_record.append((tp.topic, made))
                stamps.append((tp.topic, record.timestamp or 0))
        started = time.perf_counter()
        try:
            offered = await self.db.write(rows, datetime.now(UTC), self.stopping)
        except REFUSED as exc:  # data the database refuses: find the record
            log.warning("PostgreSQL refused a batch (%s); writing it record by record", exc)
            each = await self.db.write_each(per_record, datetime.now(UTC), self.stopping)
            offered = None if each is None else each[0]
            for topic, reason in each[1] if each else ():
                DEADLETTERS.labels(topic, reason).inc()
        if offered is None:
            return 0  # stopping while PostgreSQL was away: nothing committed, replayed later
        now = time.time()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for topic, ms in stamps:
            metrics.FRESHNESS.labels(topic).observe(max(0.0, now - ms / 1000.0))
        for table, table_rows in rows.items():
            metrics.ROWS.labels(table).inc(len(table_rows))
        self.last_commit = time.monotonic()
        self._recent.append((self.last_commit, sum(len(r) for r in rows.values())))
        await self._commit(offsets)
        n = sum(len(records) for records in batch.values())
        for tp, records in batch.items():
            metrics.RECORDS.labels(tp.topic).inc(len(records))
        self.records_committed += n
        return n

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """After the transaction: a failed commit (a rebalance took the partition, Kafka is
        away) only means the rows are written again later, which writes nothing."""
        assert self.consumer is not None
        self.next_offset.update(offsets)
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offsets not committed (%r); those records will be read again", exc)

    def _update_gauges(self) -> None:
        now = time.monotonic()
        while self._recent and now - self._recent[0][0] > RATE_WINDOW_S:
            self._recent.popleft()
        metrics.ROWS_PER_S.set(sum(n for _, n in self._recent) / RATE_WINDOW_S)
        assert self.consumer is not None
        lag: dict[str, int] = defaultdict(int)
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                lag[tp.topic] += max(0, high - self.next_offset.get(tp, 0))
        for topic in self.decoders:
            metrics.LAG.labels(topic).set(lag.get(topic, 0))

    # -- web -----------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        age = self.last_commit_age()
        assigned = len(self.consumer.assignment()) if self.consumer is not None else 0
        body = {
            "database_up": bool(self.db.up), "dsn": redacted(self.settings.sql_dsn),
            "assigned_partitions": assigned, "records_committed": self.records_committed,
            "last_commit_age_s": None if age != age else round(age, 3),
            "rows_per_second": round(sum(n for _, n in self._recent) / RATE_WINDOW_S, 1),
        }
        return (200 if self.db.up and self.consumer is not None else 503), body

    async def web(self) -> web.AppRunner:
        return await serve_probes(self.settings.web_host, self.settings.sql_web_port,
                                  self.health)


async def serve(settings: SqlSettings) -> None:
    """The process: the web port, then the sink until SIGTERM / SIGINT."""
    import signal

    sink = Sink(settings)
    runner = await sink.web()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sink.stopping.set)
    task = asyncio.create_task(sink.run())
    ready = asyncio.create_task(_say_ready(sink, settings))
    try:
        await task
    finally:
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        await runner.cleanup()
    log.info("evgrid sql stopped")


async def _say_ready(sink: Sink, settings: SqlSettings) -> None:
    while sink.consumer is None or not sink.db.up:
        await asyncio.sleep(0.1)
    print(f"evgrid sql: ready, writing to {redacted(settings.sql_dsn)}; "
          f"/health on port {settings.sql_web_port}", flush=True)
