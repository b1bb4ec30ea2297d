"""Real-broker test helpers: workers as subprocesses, producing and draining topics.

Workers run as `python -m evgrid worker` with settings passed through EVGRID_* variables —
exactly how they run in production — so a test can SIGTERM or kill -9 them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from evgrid.broker.local import free_port
from evgrid.process import WorkerProcess
from evgrid.settings import KafkaSettings, WorkerSettings

__all__ = ["WorkerProcess", "free_port"]


def isolated_settings(bootstrap: str, prefix: str, data_dir: Path, *,
                      cls: type[S] = WorkerSettings,  # type: ignore[assignment]
                      **overrides: Any) -> S:
    """Isolated settings of one process (`cls`, a worker's by default): own topics, own app
    id, own data dir, fast rebalances."""
    base = WorkerSettings(
        app_id=f"evgrid-{prefix}",
        broker=f"kafka://{bootstrap}",
        data_dir=data_dir,
        partitions=overrides.pop("partitions", 2),
        web_port=free_port(),
        broker_session_timeout_s=6.0,
        broker_rebalance_timeout_s=6.0,
        log_level=os.environ.get("EVGRID_TEST_LOG_LEVEL", "warning"),
    )
    return base.with_topic_prefix(prefix).derive(cls, **overrides)


S = TypeVar("S", bound=KafkaSettings)


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0,
                   what: str = "the condition", interval: float = 0.1) -> float:
    """Poll `predicate` until it holds; the seconds it took. It may be plain or async, and
    return a bool or `(bool, what it saw)` for the failure message. A test waits on the
    condition it is about rather than sleeping and hoping it holds by then."""
    started = time.monotonic()
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        held, seen = held if isinstance(held, tuple) else (held, None)
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + ("" if seen is None else f"; last seen: {seen}"))
        await asyncio.sleep(interval)


Record = tuple[bytes | None, bytes | None]


async def produce(bootstrap: str, topic: str, records: Iterable[Record], **client: Any) -> int:
    """Produce and wait for every acknowledgement; `client` takes security arguments
    (`KafkaSettings.kafka_client_kwargs()`)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client)
    await producer.start()
    n = 0
    try:
        batch = []
        for key, value in records:
            batch.append(await producer.send(topic, value=value, key=key))
            n += 1
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    return n


def jdump(d: dict) -> bytes:
    return orjson.dumps(d)


async def drain(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict]], bool],
    timeout: float = 30.0,
) -> list[dict]:
    """Read a topic from the beginning until `until(messages)` holds or the time is up.
    Returns decoded JSON values (with `_key` added)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        tps: list[TopicPartition] = []
        while not tps and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic) or await fetch_partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in sorted(parts or ())]
            if not tps:
                await asyncio.sleep(0.2)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    value = orjson.loads(m.value) if m.value else {}
                    value["_key"] = m.key.decode() if m.key else None
                    out.append(value)
            if until(out):
                break
    finally:
        await consumer.stop()
    return out


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of a topic as it is now, partition by partition in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await fetch_partitions(consumer, topic))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[ConsumerRecord] = []
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                out.extend(batch.get(tp, []))
        return out
    finally:
        await consumer.stop()


async def fetch_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    await consumer._client.force_metadata_update()
    return consumer._client.cluster.partitions_for_topic(topic)


async def positioned(consumer: AIOKafkaConsumer, topics: tuple[str, ...] | list[str],
                     timeout: float = 30.0) -> None:
    """Every partition of `topics` assigned to `consumer` and its position known. A topic
    created moments before may have no leader yet (the consumer retries until it has): a step
    timed from a test's own action must not measure that."""
    async def ready() -> None:
        while True:
            wanted = {(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()}
            assigned = consumer.assignment()
            if wanted and wanted <= {(tp.topic, tp.partition) for tp in assigned}:
                break
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)

    await asyncio.wait_for(ready(), timeout)


class Collector:
    """Reads topics from the beginning in the background, so a test can wait for messages."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.messages: dict[str, list[dict]] = {t: [] for t in topics}
        self.unparsed: dict[str, list[bytes | None]] = {t: [] for t in topics}
        self._task: asyncio.Task | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Collector:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def positioned(self) -> None:
        """Every partition of the topics assigned and positioned (`positioned`)."""
        assert self._consumer is not None
        await positioned(self._consumer, self.topics)

    async def _run(self) -> None:
        """Keeps reading whatever comes: a value that is not a JSON object (a test may put
        bad input on a topic on purpose) goes to `unparsed` instead of ending the reader."""
        assert self._consumer is not None
        async for m in self._consumer:
            try:
                value = orjson.loads(m.value) if m.value else {}
            except orjson.JSONDecodeError:
                value = None
            if not isinstance(value, dict):
                self.unparsed[m.topic].append(m.value)
                continue
            value["_key"] = m.key.decode() if m.key else None
            value["_seen"] = time.time()
            self.messages[m.topic].append(value)

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    async def wait(
        self, topic: str, predicate: Callable[[list[dict]], bool], timeout: float = 30.0
    ) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages[topic]):
                return self.messages[topic]
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout}s waiting on {topic}; have {len(self.messages[topic])}: "
            f"{self.messages[topic][-5:]}"
        )
