"""Where agents' outputs go: the output topics and the dead-letter path.

Sends are buffered (`send_soon`), never awaited per message: Faust flushes the producer before
it commits offsets, so a crash re-processes input whose outputs were not yet acknowledged
(at-least-once), and stable `command_id`s let the gateway drop the duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import FutureMessage, Message

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.models import DeadLetter
from evgrid.settings import Settings
from evgrid.timeutil import from_epoch


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> faust.TopicT:
    """A topic of plain bytes: decoding is ours, so a bad message can never crash Faust."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def as_key(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


class Publisher:
    """One place that knows every output topic."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        t = settings.topics
        self.settings = settings
        self.commands = raw_topic(app, t.commands)
        self.overload_alerts = raw_topic(app, t.overload_alerts)
        self.compliance_alerts = raw_topic(app, t.compliance_alerts)
        self.dr_status = raw_topic(app, t.dr_status)
        self.deadletters = raw_topic(app, t.deadletter)
        self.meter_repartition = raw_topic(app, t.meter_repartition, partitions=settings.partitions)
        self.station_load = raw_topic(app, t.station_load, partitions=settings.partitions)

    def send(
        self,
        topic: faust.TopicT,
        key: str | bytes | None,
        value: bytes,
        callback: Callable[[FutureMessage], Any] | None = None,
        headers: dict[str, bytes] | None = None,
    ) -> FutureMessage:
        return topic.send_soon(key=as_key(key), value=value, callback=callback, headers=headers)

    def deadletter(self, message: Message, error: DecodeError) -> None:
        """Reject one input message: publish why, count it, and let processing go on."""
        raw, encoding, truncated = codec.raw_as_text(
            message.value, self.settings.deadletter_raw_limit
        )
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        letter = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            reason=error.reason,
            error=error.error,
            raw=raw,
            raw_encoding=encoding,
            raw_truncated=truncated,
            raw_size=len(message.value or b""),
            ts=from_epoch(time.time()),
        )
        metrics.DEADLETTERS.labels(topic=message.topic, reason=error.reason).inc()
        self.send(self.deadletters, message.key, codec.dumps(letter))
