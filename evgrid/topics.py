"""The one topic registry: which topics exist, how they are partitioned and configured, and
creating them before a worker starts.

Faust only creates its own internal topics; input and output topics are created here, so a
topic auto-created by a stray producer with the wrong partition count is caught with a message
that says what to do, instead of a `PartitionsMismatch` deep inside an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from evgrid.settings import KafkaSettings, WorkerSettings
from evgrid.tables import TABLES, changelog_topic

log = logging.getLogger(__name__)


def rows_config(settings: WorkerSettings) -> tuple[tuple[str, str], ...]:
    """The station-rows topic is read back from its beginning by every new zone owner:
    compacted soon and often, so a read-back is about one row per station and the last
    minutes of zone loads, not the records of days; never a zone's loads younger than the
    stale limit (the readings in them still count)."""
    lag_ms = int((settings.stale_after_s + 60.0) * 1000)
    return (("segment.ms", "60000"), ("min.cleanable.dirty.ratio", "0.1"),
            ("min.compaction.lag.ms", str(lag_ms)), ("delete.retention.ms", "86400000"))


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    copartitioned: bool
    compacted: bool = False
    configs: tuple[tuple[str, str], ...] = ()

    def topic_configs(self) -> dict[str, str]:
        base = {"cleanup.policy": "compact"} if self.compacted else {}
        return {**base, **dict(self.configs)}


def internal_specs(settings: WorkerSettings) -> list[TopicSpec]:
    """The worker's own topics: its tables' changelogs and its internal topics."""
    i = settings.internal_topics
    changelogs = [TopicSpec(changelog_topic(settings.app_id, name), copartitioned=True,
                            compacted=True) for name, _help in TABLES.values()]
    return [
        *changelogs,
        TopicSpec(i.meter_repartition, copartitioned=True),
        TopicSpec(i.station_zones_repartition, copartitioned=True),
        TopicSpec(i.dr_repartition, copartitioned=True),
        TopicSpec(i.outcomes_repartition, copartitioned=True),
        TopicSpec(i.assignment, copartitioned=True),
        TopicSpec(i.station_rows, copartitioned=True, compacted=True,
                  configs=rows_config(settings)),
    ]


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic this process needs: the shared ones, and for a worker its own too.
    Co-partitioned ones must share `settings.partitions`."""
    t = settings.topics
    own = internal_specs(settings) if isinstance(settings, WorkerSettings) else []
    return [
        *own,
        TopicSpec(t.meter_values, copartitioned=True),
        TopicSpec(t.station_zones, copartitioned=True, compacted=True),
        # Read whole by every worker; partitioned like the rest only so that one owner
        # dead-letters a bad record.
        TopicSpec(t.sites, copartitioned=True, compacted=True),
        TopicSpec(t.demand_response, copartitioned=True),
        TopicSpec(t.commands, copartitioned=False),
        TopicSpec(t.overload_alerts, copartitioned=False),
        TopicSpec(t.compliance_alerts, copartitioned=False),
        TopicSpec(t.dr_status, copartitioned=False),
        TopicSpec(t.dr_reports, copartitioned=False),
        TopicSpec(t.signal_alerts, copartitioned=False),
        TopicSpec(t.station_alerts, copartitioned=False),
        TopicSpec(t.zone_load, copartitioned=False),
        TopicSpec(t.station_windows, copartitioned=False),
        TopicSpec(t.deadletter, copartitioned=False),
        # Joined with the station partitions by the worker (the station's zone).
        TopicSpec(t.outcomes, copartitioned=True),
        TopicSpec(t.station_status, copartitioned=False, compacted=True),
        # Read whole by every worker (a broadcast): frequency is area-wide and few messages.
        TopicSpec(t.frequency, copartitioned=True),
        TopicSpec(t.frequency_programs, copartitioned=True, compacted=True),
        TopicSpec(t.frequency_activations, copartitioned=False),
        TopicSpec(t.flexibility, copartitioned=False),
    ]


class TopicMismatch(RuntimeError):
    """An existing topic has a partition count that breaks co-partitioning."""


async def ensure_topics(settings: KafkaSettings, timeout_s: float = 60.0) -> None:
    """Create missing topics; refuse to start on a co-partitioning mismatch."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=15000,
        **settings.kafka_client_kwargs(),
    )
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise SystemExit(
                    f"evgrid: cannot reach Kafka at {settings.bootstrap_servers}; start one with "
                    "`evgrid kafka` or point EVGRID_BROKER at your cluster"
                ) from None
            await asyncio.sleep(1.0)
    try:
        specs = topic_specs(settings)
        # All topics, not the named ones: naming a missing topic in a metadata request makes a
        # broker with auto-create on create it, with its default partition count.
        existing = await admin.describe_topics()
        counts = {
            d["topic"]: len(d["partitions"]) for d in existing if d.get("error_code", 0) == 0
        }
        wrong = [
            f"{s.name} has {counts[s.name]}"
            for s in specs
            if s.copartitioned and s.name in counts and counts[s.name] != settings.partitions
        ]
        if wrong:
            raise TopicMismatch(
                f"co-partitioned topics must have {settings.partitions} partitions "
                f"(EVGRID_PARTITIONS), but {', '.join(wrong)}; recreate them or set "
                "EVGRID_PARTITIONS to match"
            )
        missing = [
            NewTopic(
                name=s.name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=s.topic_configs(),
            )
            for s in specs
            if s.name not in counts
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics: %s", ", ".join(t.name for t in missing))
            await _wait_for_leaders(admin, {t.name for t in missing}, deadline)
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: set[str], deadline: float) -> None:
    """New partitions take a moment to elect a leader; producing before that only earns
    NotLeaderForPartition retries and warnings."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        topics = {d["topic"]: d for d in await admin.describe_topics()}
        if all(
            n in topics and topics[n]["partitions"]
            and all(p["leader"] >= 0 for p in topics[n]["partitions"])
            for n in names
        ):
            return
        await asyncio.sleep(0.1)
