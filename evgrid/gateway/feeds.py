"""The gateway's Kafka inputs.

Commands are read by a consumer group of this instance alone (`{app_id}-gateway-{id}`), so
every instance sees every command and a restarted one resumes where it stopped. The
directory — outcomes (what is already final), `ocpp.station_status` (which instance holds
which charger) and the zone map (connector types) — is read by every instance, caught up
before the first command is handled so a restart never re-sends a finished command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from evgrid import codec
from evgrid.metrics import DEADLETTERS

if TYPE_CHECKING:
    from evgrid.gateway.server import Gateway
    from evgrid.settings import GatewaySettings

log = logging.getLogger(__name__)

OUTCOMES_LOOKBACK_S = 7 * 86_400.0  # commands live until their DR event ends; events are hours


class Feeds:
    def __init__(self, settings: GatewaySettings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self._commands: AIOKafkaConsumer | None = None
        self._directory: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task] = []
        self.ready = asyncio.Event()
        t = settings.topics
        self._handlers = {
            t.outcomes: self._on_outcome,
            t.station_status: self._on_station_status,
            t.station_zones: self._on_station_zone,
        }

    async def start(self) -> None:
        s = self.settings
        common: dict[str, Any] = dict(bootstrap_servers=s.bootstrap_servers,
                                      **s.kafka_client_kwargs())
        self._directory = AIOKafkaConsumer(enable_auto_commit=False, **common)
        await self._directory.start()
        await self._catch_up(self._directory)
        self._commands = AIOKafkaConsumer(
            s.topics.commands, group_id=f"{s.app_id}-gateway-{s.gateway_instance_id}",
            auto_offset_reset="latest", fetch_max_wait_ms=50,
            session_timeout_ms=int(s.broker_session_timeout_s * 1000),
            rebalance_timeout_ms=int(s.broker_rebalance_timeout_s * 1000), **common)
        await self._commands.start()
        self._tasks = [asyncio.create_task(self._run_commands(), name="gateway-commands"),
                       asyncio.create_task(self._run_directory(), name="gateway-directory")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in (self._commands, self._directory):
            if consumer is not None:
                await consumer.stop()

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        """Assign every partition of the directory topics, read them up to their end."""
        topics = list(self._handlers)
        tps: list[TopicPartition] = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer._client.cluster.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        outcome_tps = [tp for tp in tps if tp.topic == self.settings.topics.outcomes]
        since_ms = int((time.time() - OUTCOMES_LOOKBACK_S) * 1000)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in outcome_tps})
        await consumer.seek_to_beginning(*tps)
        for tp, found in starts.items():
            if found is not None:
                consumer.seek(tp, found.offset)
        ends = await consumer.end_offsets(tps)
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                return
            self._handle(await consumer.getmany(timeout_ms=200))

    async def _run_directory(self) -> None:
        assert self._directory is not None
        while True:
            try:
                self._handle(await self._directory.getmany(timeout_ms=500))
            except KafkaError as exc:  # a broker hiccup must not stop the gateway
                log.warning("directory feed: %r; retrying", exc)
                await asyncio.sleep(1.0)

    async def _run_commands(self) -> None:
        consumer = self._commands
        assert consumer is not None
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                log.warning("commands feed: %r; retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if not self.ready.is_set() and consumer.assignment():
                for tp in consumer.assignment():
                    await consumer.position(tp)  # resolves "latest" before we say ready
                self.ready.set()
            for msgs in batch.values():
                for msg in msgs:
                    self._command(msg.value)

    def _command(self, raw: bytes | None) -> None:
        topic = self.settings.topics.commands
        try:
            data = codec.loads_object(raw, self.settings.max_message_bytes)
            self.gateway.on_command(data)
        except codec.DecodeError as exc:
            DEADLETTERS.labels(topic, exc.reason).inc()
            log.warning("bad command: %s", exc)
        except (KeyError, ValueError, TypeError) as exc:
            DEADLETTERS.labels(topic, "command_unusable").inc()
            log.warning("command the gateway cannot act on: %r", exc)

    def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, msgs in batch.items():
            handler = self._handlers[tp.topic]
            for msg in msgs:
                try:
                    handler(msg.key, None if msg.value is None else codec.loads(msg.value))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    DEADLETTERS.labels(tp.topic, "gateway_unusable").inc()
                    log.warning("ignored %s message: %r", tp.topic, exc)

    def _on_outcome(self, key: bytes | None, value: dict | None) -> None:
        if value is not None:
            self.gateway.ledger.on_outcome(value["command_id"], value["status"])

    def _on_station_status(self, key: bytes | None, value: dict | None) -> None:
        if value is not None and value["gateway_id"] != self.settings.gateway_instance_id:
            self.gateway.ledger.on_holder(value["station_id"], value["gateway_id"],
                                          bool(value["connected"]))

    def _on_station_zone(self, key: bytes | None, value: dict | None) -> None:
        """The zone map names the connector type when a station has only one."""
        station_id = key.decode() if key else (value or {}).get("station_id")
        if not station_id:
            return
        types = list(((value or {}).get("connector_max_kw") or {}).keys())
        if len(types) == 1:
            self.gateway.connector_types[station_id] = types[0]
        else:
            self.gateway.connector_types.pop(station_id, None)
