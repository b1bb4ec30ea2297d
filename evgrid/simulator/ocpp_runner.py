"""`evgrid simulate --ocpp ws://…`: the seeded fleet as OCPP chargers against the gateway.

The mix: even-numbered stations speak 1.6, odd ones 2.0.1; a `reject_fraction` answer every
SetChargingProfile with Rejected; a `drop_fraction` drop their connection once for
`away_s` mid-run and come back (with a BootNotification). Zone mappings and DR events still
go to Kafka — configuration and the grid are not the chargers' business.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from evgrid.settings import KafkaSettings
from evgrid.simulator.fleet import Fleet
from evgrid.simulator.ocpp_client import SimCharger, limit_kw
from evgrid.simulator.runner import DRSpec, SimStats, _inject_due, publish_config
from evgrid.timeutil import iso


@dataclass
class OcppStats(SimStats):
    profiles: Counter = field(default_factory=Counter)
    connected: int = 0
    drops: int = 0


@dataclass
class _Plan:
    rejecting: set[str]
    dropping: dict[str, float]  # station -> seconds into the run when it drops


def plan(fleet: Fleet, reject_fraction: float, drop_fraction: float, duration_s: float,
         seed: int) -> _Plan:
    rng = random.Random(seed)
    ids = sorted(fleet.stations)
    rejecting = {s for s in ids if rng.random() < reject_fraction}
    dropping = {s: rng.uniform(0.2, 0.6) * duration_s for s in ids
                if rng.random() < drop_fraction}
    return _Plan(rejecting, dropping)


async def run_ocpp_simulation(
    settings: KafkaSettings, fleet: Fleet, url: str, *, duration_s: float, interval_s: float = 10.0,
    accel: float = 1.0, dr: list[DRSpec] | None = None, reject_fraction: float = 0.05,
    drop_fraction: float = 0.05, away_s: float = 30.0, seed: int = 1,
    on_tick: Callable[[float, Fleet, SimStats], None] | None = None,
) -> OcppStats:
    stats = OcppStats(events=list(dr or []))
    layout = plan(fleet, reject_fraction, drop_fraction, duration_s, seed)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=10,
                                **settings.kafka_client_kwargs())
    await producer.start()

    def on_profile(station_id: str, action: str, payload: dict, at: float) -> None:
        stats.profiles[action] += 1
        version = chargers[station_id].version
        if station_id in layout.rejecting:
            return
        if action == "ClearChargingProfile":
            fleet.command(at, {"station_id": station_id, "action": "CLEAR"})
            stats.commands += 1
            stats.commands_by_action["CLEAR"] = stats.commands_by_action.get("CLEAR", 0) + 1
        elif action == "SetChargingProfile":
            where, kw = limit_kw(version, payload)
            per_connector = [] if where == 0 else [{"connector_id": where, "limit_kw": kw}]
            fleet.command(at, {"station_id": station_id, "action": "SET",
                               "target_power_kw": kw if where == 0 else 1e9,
                               "connectors": per_connector})
            stats.commands += 1
            stats.commands_by_action["SET"] = stats.commands_by_action.get("SET", 0) + 1

    chargers = {
        station_id: SimCharger(url, station_id, "1.6" if n % 2 == 0 else "2.0.1",
                        accept=station_id not in layout.rejecting, on_profile=on_profile)
        for n, station_id in enumerate(sorted(fleet.stations))
    }
    t = settings.topics
    tasks: list[asyncio.Task] = []
    try:
        await publish_config(producer, settings, fleet)
        for batch in _batches(list(chargers.values()), 200):
            await asyncio.gather(*(c.connect() for c in batch))
        stats.connected = len(chargers)
        start = time.time()
        tasks = [asyncio.create_task(_drop_and_return(chargers[s], at, away_s, stats))
                 for s, at in layout.dropping.items()]
        next_reading = start
        while (now := time.time()) - start < duration_s:
            await _inject_due(producer, t.demand_response, fleet, stats, start, now)
            if now >= next_reading:
                fleet.step(now, interval_s * accel)
                by_station: dict[str, list[dict]] = {}
                for reading in fleet.readings(iso(now)):
                    by_station.setdefault(reading["station_id"], []).append(reading)
                sent = await asyncio.gather(*(chargers[s].send_readings(r)
                                              for s, r in by_station.items()))
                stats.readings += sum(sent)
                next_reading += interval_s
                if on_tick:
                    on_tick(now - start, fleet, stats)
            await asyncio.sleep(min(0.1, max(0.0, next_reading - time.time())))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(c.close() for c in chargers.values()), return_exceptions=True)
        await producer.stop()
    return stats


def _batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _drop_and_return(charger: SimCharger, at_s: float, away_s: float,
                           stats: OcppStats) -> None:
    await asyncio.sleep(at_s)
    await charger.close()
    stats.drops += 1
    await asyncio.sleep(away_s)
    with contextlib.suppress(OSError, TimeoutError):
        await charger.connect()
