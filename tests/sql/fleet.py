"""A small fleet's outputs, built with the wire models (so each is what the worker and the
gateway publish), and producing them onto a test's topics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from evgrid import codec
from evgrid.models import (
    ChargingCommand,
    CommandOutcome,
    ComplianceAlert,
    DRStatus,
    OverloadAlert,
    StationWindow,
    ZoneLoadReport,
)
from evgrid.settings import KafkaSettings

#: Ten minutes ago, on a whole minute: the fleet's clock (well inside any retention).
T0 = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def window(station_id: str, zone_id: str, minute: int, total: float, avg: float, peak: float,
           connectors: int, sessions: int) -> StationWindow:
    return StationWindow(station_id=station_id, zone_id=zone_id, window_start=at(60 * minute),
                         window_end=at(60 * minute + 60), total_power_kw=total,
                         active_sessions=sessions, active_connectors=connectors,
                         avg_power_per_connector_kw=avg, max_connector_power_kw=peak)


def zone_load(zone_id: str, s: float, load: float, capacity: float, stations: int,
              cap: float | None = None) -> ZoneLoadReport:
    """`stations` of its members draw; one more member is silent."""
    return ZoneLoadReport(zone_id=zone_id, zone_total_power_kw=load, zone_capacity_kw=capacity,
                          stations_active=stations, cap_kw=cap, members=stations + 1,
                          members_reporting=stations, load_age_s=0.5, ts=at(s))


def status(signal_id: str, zone_id: str, state: str, s: float, cap: float | None = None,
           current: float = 0.0) -> DRStatus:
    return DRStatus(signal_id=signal_id, zone_id=zone_id, state=state, signal_type="CURTAIL",
                    priority=2, start_ts=at(100), end_ts=at(3600), baseline_kw=None
                    if cap is None else cap + 20, cap_kw=cap, current_kw=current,
                    achieved_reduction_kw=0.0, shortfall_kw=0.0, stations_commanded=2,
                    stations_noncompliant=0, updated_ts=at(s))


def command(command_id: str, signal_id: str, zone_id: str, station_id: str, s: float,
            target: float | None, action: str = "SET") -> ChargingCommand:
    return ChargingCommand(
        command_id=command_id, action=action, reason="DR", station_id=station_id,
        zone_id=zone_id, target_power_kw=target, station_shed_kw=0.0, signal_id=signal_id,
        priority=2, dr_end_ts=at(3600), command_ts=at(s), connectors=[],
        ocpp={"1.6": [], "2.0.1": []})


def outcome(command_id: str, station_id: str, status_: str, s: float) -> CommandOutcome:
    return CommandOutcome(command_id=command_id, station_id=station_id, action="SET",
                          status=status_, attempt=1, final=True, gateway_id="gw1", ts=at(s))


def compliance(station_id: str, zone_id: str, signal_id: str, state: str, s: float,
               target: float, measured: float) -> ComplianceAlert:
    return ComplianceAlert(state=state, station_id=station_id, zone_id=zone_id,
                           signal_id=signal_id, target_power_kw=target, measured_kw=measured,
                           tolerance_kw=1.0, since=at(s - 60), detected_at=at(s))


def overload(alert_type: str, s: float, *, station_id: str | None = None,
             zone_id: str | None = None, total: float, limit: float) -> OverloadAlert:
    station = station_id is not None
    return OverloadAlert(alert_type=alert_type, station_id=station_id, zone_id=zone_id,
                         total_power_kw=total, contract_max_kw=limit if station else None,
                         capacity_kw=None if station else limit,
                         overload_kw=max(0.0, total - limit), detected_at=at(s))


def key_of(topic: str, message: BaseModel) -> bytes:
    data: dict[str, Any] = message.model_dump()
    for field in ("station_id", "zone_id"):
        if data.get(field):
            return str(data[field]).encode()
    raise ValueError(f"no key for {topic}: {data}")


async def publish(settings: KafkaSettings, messages: list[tuple[str, BaseModel]]) -> int:
    """Produce (topic, message) pairs in order on one producer, keyed as the worker keys
    them: zone topics by zone, station topics by station."""
    zone_keyed = {settings.topics.zone_load, settings.topics.dr_status}
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        sent = []
        for topic, message in messages:
            key = (str(message.zone_id).encode()  # type: ignore[attr-defined]
                   if topic in zone_keyed else key_of(topic, message))
            sent.append(await producer.send(topic, codec.dumps(message), key=key))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(messages)
