"""The zone side: station rows and DR signals in, commands, statuses and alerts out.

One worker owns each zone (the partition of `zone_id` on the co-partitioned topics), so all of
a zone's decisions are made single-threaded here. Timers never mutate state: they send a `tick`
through the zone's own partition, so ticks, readings and signals are applied in one order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from faust.types import Message

from evgrid import codec, metrics
from evgrid.agents.publish import Publisher
from evgrid.codec import DecodeError
from evgrid.commands import command_message
from evgrid.core.control import Decisions, ZoneController
from evgrid.core.lifecycle import DRSignal
from evgrid.core.overload import HysteresisAlarm
from evgrid.core.types import StationRow
from evgrid.core.zone import ZoneLoad
from evgrid.models import ChargingCommand, ComplianceAlert, DemandResponseSignal, DRStatus
from evgrid.settings import Settings
from evgrid.tables import Tables, zone_station_key
from evgrid.timeutil import from_epoch

from .station import overload_message

_STATUS_TIMES = ("start_ts", "end_ts", "updated_ts")
_COMPLIANCE_TIMES = ("since", "detected_at")


class ZoneEntry:
    """A zone's working state: its stations, its DR controller, its overload alarm."""

    __slots__ = ("controller", "load", "persisted", "tick_sent_at", "zone_id")

    def __init__(self, zone_id: str, load: ZoneLoad, controller: ZoneController) -> None:
        self.zone_id = zone_id
        self.load = load
        self.controller = controller
        self.persisted = b""
        self.tick_sent_at = 0.0

    def control_bytes(self) -> bytes:
        return codec.dumps(
            {
                "members": sorted(self.load.stations),
                "controller": self.controller.to_dict(),
                "alarm": self.load.alarm.to_dict(),
            }
        )


def signal_from_model(sig: DemandResponseSignal) -> DRSignal:
    return DRSignal(
        signal_id=sig.signal_id,
        zone_id=sig.zone_id,
        signal_type=sig.signal_type,
        target_reduction_kw=sig.target_reduction_kw,
        start_ts=sig.start_ts.timestamp(),
        end_ts=sig.end_ts.timestamp(),
        priority=sig.priority,
        received_ts=sig.received_ts.timestamp(),
    )


def _with_times(d: dict, fields: tuple[str, ...]) -> dict:
    return {**d, **{f: from_epoch(d[f]) for f in fields if d.get(f) is not None}}


class ZoneSide:
    """Handles `grid.demand_response` and the internal `evgrid-station-load` topic."""

    def __init__(
        self,
        settings: Settings,
        tables: Tables,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.tunables = settings.tunables()
        self.tables = tables
        self.out = publisher
        self.clock = clock
        self.zones: dict[str, ZoneEntry] = {}

    def forget(self) -> None:
        """Partitions moved: drop the cache; owned zones reload from the tables."""
        self.zones.clear()

    # -- dispatch ---------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        if message.topic == self.settings.topics.demand_response:
            self.on_signal_message(message)
            return
        try:
            body = codec.loads_object(message.value, self.settings.max_message_bytes)
            kind = body["kind"]
            zone_id = message.key.decode() if message.key else ""
        except (DecodeError, KeyError, UnicodeDecodeError) as err:
            reason = err if isinstance(err, DecodeError) else DecodeError("internal", repr(err))
            self.out.deadletter(message, reason)
            return
        if kind == "station":
            self.on_station(zone_id, StationRow.from_dict(body["row"]))
        elif kind == "remove":
            self.on_remove(zone_id, body["station_id"])
        elif kind == "tick":
            self.on_tick(zone_id)
        elif kind == "dr":
            self._apply_signal(zone_id, body["signal"], time.perf_counter())

    # -- inputs ------------------------------------------------------------------------------

    def on_signal_message(self, message: Message) -> None:
        received = time.perf_counter()
        try:
            sig = codec.decode(DemandResponseSignal, message.value, self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(message, err)
            return
        if message.key != sig.zone_id.encode():
            # The utility keyed it by something else: send it to the zone's owner.
            metrics.REPARTITIONED.labels(topic=message.topic).inc()
            body = {"kind": "dr", "signal": sig.model_dump(mode="json")}
            self.out.send(self.out.station_load, sig.zone_id, codec.dumps(body))
            return
        self._apply_signal(sig.zone_id, sig, received)

    def _apply_signal(
        self, zone_id: str, sig: DemandResponseSignal | dict, received: float
    ) -> None:
        if isinstance(sig, dict):
            sig = DemandResponseSignal.model_validate(sig)
        zone = self._zone(zone_id)
        decisions = zone.controller.on_signal(
            signal_from_model(sig), zone.load.stations, self.clock()
        )
        self._publish(zone, decisions, received)

    def on_station(self, zone_id: str, row: StationRow) -> None:
        zone = self._zone(zone_id)
        is_new = row.station_id not in zone.load.stations
        zone.load.upsert(row, self.clock(), self.tunables.stale_after_s)
        self.tables.zone_stations[zone_station_key(zone_id, row.station_id)] = codec.dumps(
            row.to_dict()
        )
        self._check_zone_overload(zone, exact=False)
        if is_new:
            self._persist(zone)

    def on_remove(self, zone_id: str, station_id: str) -> None:
        zone = self._zone(zone_id)
        if zone.load.remove(station_id):
            del self.tables.zone_stations[zone_station_key(zone_id, station_id)]
            self._persist(zone)

    def on_tick(self, zone_id: str) -> None:
        zone = self._zone(zone_id)
        decisions = zone.controller.on_tick(zone.load.stations, self.clock())
        self._check_zone_overload(zone)
        self._publish(zone, decisions, None)

    # -- outputs -----------------------------------------------------------------------------

    def _publish(self, zone: ZoneEntry, decisions: Decisions, received: float | None) -> None:
        out = self.out
        last = len(decisions.commands) - 1
        for i, cmd in enumerate(decisions.commands):
            message = ChargingCommand.model_validate(command_message(cmd))
            callback = None
            if i == last and received is not None:
                def callback(_fut: object, t0: float = received) -> None:
                    metrics.DR_REACTION.observe(time.perf_counter() - t0)
            out.send(out.commands, cmd.station_id, codec.dumps(message), callback=callback)
            metrics.COMMANDS.labels(action=cmd.action).inc()
        for status in decisions.statuses:
            message = DRStatus.model_validate(_with_times(status, _STATUS_TIMES))
            out.send(out.dr_status, zone.zone_id, codec.dumps(message))
        for alert in decisions.compliance:
            message = ComplianceAlert.model_validate(_with_times(alert, _COMPLIANCE_TIMES))
            out.alert(
                out.compliance_alerts, alert["station_id"], codec.dumps(message),
                alert["state"],
                f"{alert['measured_kw']:.1f} kW vs target {alert['target_power_kw']:.1f}",
            )
            metrics.ALERTS.labels(alert_type=f"DR_{alert['state']}").inc()
        self._persist(zone)

    def _check_zone_overload(self, zone: ZoneEntry, exact: bool = True) -> None:
        alert = zone.load.check_overload(self.clock(), self.tunables.stale_after_s, exact)
        if alert is not None:
            metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
            self.out.alert(
                self.out.overload_alerts, zone.zone_id, overload_message(alert),
                alert["alert_type"],
                f"{alert['total_power_kw']:.1f} kW vs capacity {alert['capacity_kw']:.1f}",
            )
            self._persist(zone)

    def _persist(self, zone: ZoneEntry) -> None:
        """Write the zone's control row only when it changed: it is small but not free."""
        data = zone.control_bytes()
        if data != zone.persisted:
            self.tables.zone_control[zone.zone_id.encode()] = data
            zone.persisted = data

    # -- state -------------------------------------------------------------------------------

    def _zone(self, zone_id: str) -> ZoneEntry:
        zone = self.zones.get(zone_id)
        if zone is None:
            zone = self.load_zone(zone_id)
            self.zones[zone_id] = zone
        return zone

    def load_zone(self, zone_id: str) -> ZoneEntry:
        """Rebuild a zone from its tables (after a restart or a rebalance)."""
        load = ZoneLoad(zone_id, hysteresis_pct=self.tunables.overload_hysteresis_pct)
        raw = self.tables.zone_control.get(zone_id.encode())
        if raw is None:
            return ZoneEntry(zone_id, load, ZoneController(zone_id, self.tunables))
        control = codec.loads(raw)
        now = self.clock()
        for station_id in control["members"]:
            row = self.tables.zone_stations.get(zone_station_key(zone_id, station_id))
            if row is not None:
                load.upsert(StationRow.from_dict(codec.loads(row)), now,
                            self.tunables.stale_after_s)
        load.alarm = HysteresisAlarm.from_dict(control["alarm"])
        controller = ZoneController.from_dict(control["controller"], self.tunables)
        zone = ZoneEntry(zone_id, load, controller)
        zone.persisted = raw
        return zone
