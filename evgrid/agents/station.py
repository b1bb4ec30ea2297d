"""The station side: meter values and zone mappings in, station rows out to the zone owner.

Runs inside the station agent (keyed by station_id, co-partitioned with the mapping topic), so
everything here is synchronous and single-writer per station; it decodes, calls the core,
persists, and publishes — no decisions of its own.
"""

from __future__ import annotations

import time

from faust.types import Message

from evgrid import codec, metrics
from evgrid.agents.publish import Publisher
from evgrid.codec import DecodeError
from evgrid.core.overload import HysteresisAlarm, contract_alert
from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables
from evgrid.models import MeterValue, OverloadAlert, StationZone
from evgrid.settings import Settings
from evgrid.tables import Tables
from evgrid.timeutil import from_epoch

#: Header naming the topic a re-keyed message came from, so one repartition topic serves both.
SOURCE_HEADER = "evgrid-source"


#: A connector's power must move by this much before the zone owner hears of it...
FORWARD_DEAD_BAND_KW = 0.05


class StationEntry:
    """A station's working state, cached in memory between readings."""

    __slots__ = ("alarm", "forwarded", "forwarded_at", "state")

    def __init__(self, state: StationState, alarm: HysteresisAlarm) -> None:
        self.state = state
        self.alarm = alarm
        # What the zone owner was last told, per connector: (power, session). In memory
        # only: after a restart everything is forwarded again.
        self.forwarded: dict[int, tuple[float, str | None]] = {}
        self.forwarded_at = 0.0

    def worth_forwarding(self, reading: ConnectorReading, heartbeat_s: float) -> bool:
        """Forward a reading that changes the zone's picture, or keeps it fresh: steady
        readings every few seconds would otherwise cost the zone side a write each."""
        last = self.forwarded.get(reading.connector_id)
        return (
            last is None
            or last[1] != reading.session_id
            or abs(last[0] - reading.power_kw) >= FORWARD_DEAD_BAND_KW
            or reading.event_ts - self.forwarded_at >= heartbeat_s
        )

    def mark_forwarded(self) -> None:
        self.forwarded = {
            cid: (c.power_kw, c.session_id) for cid, c in self.state.connectors.items()
        }
        self.forwarded_at = max((c.event_ts for c in self.state.connectors.values()), default=0)

    def to_bytes(self) -> bytes:
        return codec.dumps({"state": self.state.to_dict(), "alarm": self.alarm.to_dict()})

    @classmethod
    def from_bytes(cls, raw: bytes) -> StationEntry:
        d = codec.loads(raw)
        return cls(StationState.from_dict(d["state"]), HysteresisAlarm.from_dict(d["alarm"]))


def overload_message(alert: dict) -> bytes:
    return codec.dumps(OverloadAlert(**{**alert, "detected_at": from_epoch(alert["detected_at"])}))


class StationSide:
    """Handles `ocpp.meter_values`, `config.station_zones` and their repartition topic."""

    def __init__(
        self, settings: Settings, tables: Tables, publisher: Publisher
    ) -> None:
        self.settings = settings
        self.tunables: Tunables = settings.tunables()
        self.tables = tables
        self.out = publisher
        self.topics = settings.topics
        self._cache: dict[str, StationEntry] = {}
        self._configs: dict[str, StationConfig | None] = {}
        self.unmapped: set[str] = set()

    def forget(self) -> None:
        """Partitions moved: another worker may now write these stations."""
        self._cache.clear()
        self._configs.clear()
        self.unmapped.clear()
        metrics.STATIONS_UNMAPPED.set(0)

    # -- dispatch ---------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        topic = message.topic
        if topic == self.topics.meter_repartition:
            source = dict(message.headers or ()).get(SOURCE_HEADER, b"").decode()
            topic = source or self.topics.meter_values
            rekeyed = True
        else:
            rekeyed = False
        if topic == self.topics.station_zones:
            self.on_station_zone(message, rekeyed)
        else:
            self.on_meter_value(message, rekeyed)

    # -- meter values ------------------------------------------------------------------------

    def on_meter_value(self, message: Message, rekeyed: bool = False) -> None:
        try:
            mv = codec.decode(MeterValue, message.value, self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(message, err)
            return
        station_id = mv.station_id
        if not rekeyed and message.key != station_id.encode():
            self._repartition(message, station_id)
            return
        reading = ConnectorReading(
            connector_id=mv.connector_id,
            connector_type=mv.connector_type,
            power_kw=mv.power_kw,
            event_ts=mv.event_ts.timestamp(),
            session_id=mv.session_id,
            current_a=mv.current_a,
            voltage_v=mv.voltage_v,
            energy_kwh=mv.energy_kwh,
            soc_percent=mv.soc_percent,
        )
        entry = self._entry(station_id)
        if not entry.state.apply(reading):
            metrics.READINGS_SUPERSEDED.inc()
            return
        metrics.READINGS.inc()
        config = self._config(station_id)
        if config is not None:
            now = time.time()
            load = entry.state.load_kw(now, self.tunables.stale_after_s)
            alert = contract_alert(station_id, load, config.contract_max_kw, entry.alarm, now)
            if alert is not None:
                metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
                self.out.alert(
                    self.out.overload_alerts, station_id, overload_message(alert),
                    alert["alert_type"],
                    f"{alert['total_power_kw']:.1f} kW vs contract {config.contract_max_kw:.1f}",
                )
        self.tables.station_state[station_id.encode()] = entry.to_bytes()
        if config is None:
            metrics.READINGS_UNMAPPED.inc()
            if station_id not in self.unmapped:
                self.unmapped.add(station_id)
                metrics.STATIONS_UNMAPPED.set(len(self.unmapped))
            return
        # ...or before a quarter of the stale limit has passed since it last heard.
        if entry.worth_forwarding(reading, self.tunables.stale_after_s / 4):
            self._emit_row(config, entry)

    # -- zone mappings -----------------------------------------------------------------------

    def on_station_zone(self, message: Message, rekeyed: bool = False) -> None:
        if not message.value:  # tombstone: the station leaves evgrid
            if not message.key:
                self.out.deadletter(message, DecodeError(
                    "tombstone_without_key", "a tombstone must carry the station_id as key"))
                return
            self._remove_station(message.key.decode("utf-8", "replace"))
            return
        try:
            sz = codec.decode(StationZone, message.value, self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(message, err)
            return
        if not rekeyed and message.key != sz.station_id.encode():
            self._repartition(message, sz.station_id)
            return
        config = StationConfig(
            station_id=sz.station_id,
            zone_id=sz.zone_id,
            max_station_kw=sz.max_station_kw,
            contract_max_kw=sz.contract_max_kw,
            connector_max_kw=dict(sz.connector_max_kw) if sz.connector_max_kw else None,
            profile_mode=sz.profile_mode,
            stack_level=sz.stack_level,
        )
        old = self._config(sz.station_id)
        if old is not None and old.zone_id != config.zone_id:
            self._emit_removal(old)
        self._configs[sz.station_id] = config
        self.tables.station_config[sz.station_id.encode()] = codec.dumps(config.to_dict())
        if sz.station_id in self.unmapped:
            self.unmapped.discard(sz.station_id)
            metrics.STATIONS_UNMAPPED.set(len(self.unmapped))
        self._emit_row(config, self._entry(sz.station_id))

    # -- helpers -----------------------------------------------------------------------------

    def _repartition(self, message: Message, station_id: str) -> None:
        """The producer keyed this message by something else: re-key it so the station's
        owner sees it, in order with the station's other messages from then on."""
        metrics.REPARTITIONED.labels(topic=message.topic).inc()
        self.out.send(
            self.out.meter_repartition,
            station_id,
            message.value,
            headers={SOURCE_HEADER: message.topic.encode()},
        )

    def _entry(self, station_id: str) -> StationEntry:
        entry = self._cache.get(station_id)
        if entry is None:
            raw = self.tables.station_state.get(station_id.encode())
            if raw is not None:
                entry = StationEntry.from_bytes(raw)
            else:
                entry = StationEntry(
                    StationState(
                        window_s=self.tunables.window_s,
                        allowed_lateness_s=self.tunables.allowed_lateness_s,
                        stale_after_s=self.tunables.stale_after_s,
                    ),
                    HysteresisAlarm(hysteresis_pct=self.tunables.overload_hysteresis_pct),
                )
            self._cache[station_id] = entry
        return entry

    def _config(self, station_id: str) -> StationConfig | None:
        if station_id in self._configs:
            return self._configs[station_id]
        raw = self.tables.station_config.get(station_id.encode())
        config = StationConfig.from_dict(codec.loads(raw)) if raw else None
        self._configs[station_id] = config
        return config

    def _emit_row(self, config: StationConfig, entry: StationEntry) -> None:
        entry.mark_forwarded()
        row = StationRow(config=config, connectors=entry.state.connectors)
        self.out.send(
            self.out.station_load,
            config.zone_id,
            codec.dumps({"kind": "station", "row": row.to_dict()}),
        )

    def _emit_removal(self, config: StationConfig) -> None:
        self.out.send(
            self.out.station_load,
            config.zone_id,
            codec.dumps({"kind": "remove", "station_id": config.station_id}),
        )

    def _remove_station(self, station_id: str) -> None:
        old = self._config(station_id)
        if old is not None:
            self._emit_removal(old)
            del self.tables.station_config[station_id.encode()]
        self._configs[station_id] = None
