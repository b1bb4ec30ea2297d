"""Runs a Fleet against Kafka: publishes zone mappings and meter values, obeys commands, and
injects DR events on a schedule (`--dr zone=Z1,at=+30s,reduce=25%,for=5m`)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from evgrid import codec
from evgrid.settings import KafkaSettings
from evgrid.simulator.fleet import Fleet
from evgrid.timeutil import iso

_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, +90s)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class DRSpec:
    """One DR event to inject: reduce a zone's load by a percentage or a kW figure."""

    zone_id: str
    at_s: float
    for_s: float
    reduce_pct: float | None = None
    reduce_kw: float | None = None
    signal_type: str = "CURTAIL"
    priority: int = 2
    signal_id: str = ""
    sent: bool = False
    baseline_kw: float = 0.0
    target_kw: float = 0.0

    @classmethod
    def parse(cls, text: str) -> DRSpec:
        """`zone=Z1,at=+30s,reduce=25%,for=5m[,type=SHED][,priority=1]`."""
        try:
            parts = dict(p.split("=", 1) for p in text.split(","))
            reduce = parts.pop("reduce")
            spec = cls(
                zone_id=parts.pop("zone"),
                at_s=parse_duration(parts.pop("at", "+0s")),
                for_s=parse_duration(parts.pop("for", "5m")),
                signal_type=parts.pop("type", "CURTAIL").upper(),
                priority=int(parts.pop("priority", "2")),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"bad --dr {text!r}: {exc}; expected zone=Z1,at=+30s,reduce=25%,for=5m"
            ) from None
        if parts:
            raise ValueError(f"bad --dr {text!r}: unknown keys {sorted(parts)}")
        if reduce.endswith("%"):
            spec.reduce_pct = float(reduce[:-1])
        else:
            spec.reduce_kw = float(reduce.lower().removesuffix("kw"))
        return spec


@dataclass
class SimStats:
    readings: int = 0
    commands: int = 0
    commands_by_action: dict[str, int] = field(default_factory=dict)
    events: list[DRSpec] = field(default_factory=list)


#: How long the simulator leaves the workers to read its sites before it maps stations.
SITES_SETTLE_S = 2.0


async def publish_config(producer: AIOKafkaProducer, settings: KafkaSettings, fleet: Fleet) -> None:
    """The fleet's sites, then its stations' mappings (a mapping naming a site the workers
    do not know yet is refused)."""
    t = settings.topics
    if fleet.sites:
        for site_id, site in fleet.sites.items():
            await producer.send(t.sites, codec.dumps(site), key=site_id.encode())
        await producer.flush()
        await asyncio.sleep(SITES_SETTLE_S)
    for st in fleet.stations.values():
        await producer.send(t.station_zones, codec.dumps(fleet.station_config(st)),
                            key=st.station_id.encode())
    await producer.flush()


async def run_simulation(
    settings: KafkaSettings,
    fleet: Fleet,
    *,
    duration_s: float,
    interval_s: float = 5.0,
    accel: float = 1.0,
    dr: list[DRSpec] | None = None,
    on_tick: Callable[[float, Fleet, SimStats], None] | None = None,
) -> SimStats:
    """Publish mappings, then a reading per connector every `interval_s` for `duration_s`."""
    stats = SimStats(events=list(dr or []))
    security = settings.kafka_client_kwargs()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=10,
                                **security)
    consumer = AIOKafkaConsumer(
        settings.topics.commands,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        **security,
    )
    await producer.start()
    await consumer.start()
    t = settings.topics
    try:
        await publish_config(producer, settings, fleet)
        start = time.time()
        next_reading = start
        while (now := time.time()) - start < duration_s:
            await _inject_due(producer, t.demand_response, fleet, stats, start, now)
            if now >= next_reading:
                fleet.step(now, interval_s * accel)
                stamp = iso(now)
                for reading in fleet.readings(stamp):
                    await producer.send(
                        t.meter_values, codec.dumps(reading), key=reading["station_id"].encode()
                    )
                    stats.readings += 1
                next_reading += interval_s
                if on_tick:
                    on_tick(now - start, fleet, stats)
            batch = await consumer.getmany(timeout_ms=100)
            for msgs in batch.values():
                for msg in msgs:
                    command = codec.loads(msg.value)
                    if fleet.command(time.time(), command):
                        stats.commands += 1
                        action = command.get("action", "?")
                        stats.commands_by_action[action] = (
                            stats.commands_by_action.get(action, 0) + 1
                        )
    finally:
        await consumer.stop()
        await producer.stop()
    return stats


async def _inject_due(
    producer: AIOKafkaProducer, topic: str, fleet: Fleet, stats: SimStats, start: float,
    now: float,
) -> None:
    for n, spec in enumerate(stats.events):
        if spec.sent or now - start < spec.at_s:
            continue
        spec.baseline_kw = fleet.zone_load_kw(spec.zone_id)
        spec.target_kw = (
            spec.baseline_kw * spec.reduce_pct / 100.0
            if spec.reduce_pct is not None
            else float(spec.reduce_kw or 0.0)
        )
        spec.signal_id = spec.signal_id or f"SIM-{int(start)}-{n + 1}"
        signal = {
            "signal_id": spec.signal_id,
            "zone_id": spec.zone_id,
            "signal_type": spec.signal_type,
            "target_reduction_kw": round(spec.target_kw, 3),
            "start_ts": iso(now),
            "end_ts": iso(now + spec.for_s),
            "priority": spec.priority,
            "received_ts": iso(now),
        }
        await producer.send_and_wait(topic, codec.dumps(signal), key=spec.zone_id.encode())
        spec.sent = True
