"""The station side: meter values and zone mappings in, coalesced zone messages out.

Synchronous and broker-free: the ingest Service feeds it batches of records, the config agent
feeds it mappings; it decodes, calls the core, updates `StationStore`, and queues output on
the publisher. What changed in a batch reaches each zone's owner as one `loads` message.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.core.clock import CLOCK_SKEW, FUTURE_REASON, in_future
from evgrid.core.overload import contract_alert
from evgrid.core.types import ConnectorReading, StationConfig
from evgrid.ingest.routing import Router
from evgrid.models import MeterValue, OverloadAlert, StationAlert, station_window
from evgrid.models.internal import (
    StationJoined,
    StationLeft,
    StationLimits,
    StationLoad,
    ZoneLoads,
)
from evgrid.publisher import Publisher, Record
from evgrid.settings import Settings
from evgrid.state.stations import StationEntry, StationStore
from evgrid.timeutil import from_epoch, iso


def arrival_of(record: Record) -> float:
    """When the reading was heard: its Kafka timestamp, the same on a replay (so a replayed
    reading is judged as it was the first time); the worker's clock if it has none."""
    ts = getattr(record, "timestamp", None)
    return ts / 1000.0 if ts is not None and ts > 0 else time.time()


def overload_message(alert: dict) -> bytes:
    return codec.dumps(OverloadAlert(**{**alert, "detected_at": from_epoch(alert["detected_at"])}))


def joined_message(config: StationConfig) -> StationJoined:
    return StationJoined(
        zone_id=config.zone_id,
        station_id=config.station_id,
        limits=StationLimits(
            max_station_kw=config.max_station_kw,
            contract_max_kw=config.contract_max_kw,
            connector_max_kw=config.connector_max_kw,
            profile_mode=config.profile_mode,  # type: ignore[arg-type]
            stack_level=config.stack_level,
        ),
    )


class StationIngest:
    def __init__(self, settings: Settings, store: StationStore, publisher: Publisher) -> None:
        self.settings = settings
        self.tunables = settings.tunables()
        self.store = store
        self.out = publisher
        self.router = Router(settings.partitions, settings.topics.meter_repartition, publisher)
        self.heartbeat_s = self.tunables.stale_after_s / 4
        self.unmapped: set[str] = set()
        #: Stations whose loads the zone owner must hear after this batch, by zone.
        self._changed: dict[str, dict[str, StationEntry]] = defaultdict(dict)

    # -- meter values ----------------------------------------------------------------------

    def on_meter_value(self, record: Record) -> None:
        try:
            mv = codec.decode(MeterValue, record.value, self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(record, err)
            return
        station_id = mv.station_id
        if self.router.rerouted(record, station_id):
            return
        event_ts = mv.event_ts.timestamp()
        arrival_ts = arrival_of(record)
        entry = self.store.entry(station_id, record.partition)
        if in_future(event_ts, arrival_ts, self.tunables.future_tolerance_s):
            self._refuse_future(record, entry, event_ts, arrival_ts)
            return
        reading = ConnectorReading(
            connector_id=mv.connector_id,
            connector_type=mv.connector_type,
            power_kw=mv.power_kw,
            event_ts=event_ts,
            session_id=mv.session_id,
            current_a=mv.current_a,
            voltage_v=mv.voltage_v,
            energy_kwh=mv.energy_kwh,
            soc_percent=mv.soc_percent,
            arrival_ts=arrival_ts,
        )
        resets = entry.state.clock_resets
        if not entry.state.apply(reading):
            metrics.READINGS_SUPERSEDED.inc()
            return
        metrics.READINGS.inc()
        if entry.state.clock_resets != resets:
            metrics.CLOCK_RESETS.inc()
        self.store.touched(entry)
        self._check_clock(entry, arrival_ts)
        config = entry.config
        for window in self.store.persist_closed_windows(entry):
            self.out.send(self.settings.topics.station_windows, station_id, codec.dumps(
                station_window(station_id, config and config.zone_id, window)))
        if config is None:
            metrics.READINGS_UNMAPPED.inc()
            if station_id not in self.unmapped:
                self.unmapped.add(station_id)
                metrics.STATIONS_UNMAPPED.set(len(self.unmapped))
            return
        self._check_contract(entry, config)
        if entry.worth_forwarding(reading, self.heartbeat_s):
            self._changed[config.zone_id][station_id] = entry

    def _refuse_future(self, record: Record, entry: StationEntry, event_ts: float,
                       arrival_ts: float) -> None:
        """Bad input, never state; but its clock is measured, so the skew shows and alerts."""
        entry.state.note_future(event_ts, arrival_ts)
        self.store.touched(entry)
        self._check_clock(entry, arrival_ts)
        self.out.deadletter(record, DecodeError(FUTURE_REASON, (
            f"event_ts {iso(event_ts)} is {event_ts - arrival_ts:.0f} s ahead of when the "
            f"reading was heard ({iso(arrival_ts)}); the charger's clock is wrong "
            f"(tolerance EVGRID_FUTURE_TOLERANCE_S={self.tunables.future_tolerance_s:g})")))

    def _check_clock(self, entry: StationEntry, now: float) -> None:
        t = self.tunables
        alert = entry.state.clock.skew_alert(entry.station_id, now, t.clock_skew_alert_s,
                                             t.overload_hysteresis_pct)
        if alert is None:
            return
        self.store.write_now(entry)
        metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
        if alert["alert_type"] == CLOCK_SKEW:
            metrics.STATION_CLOCK_OFFSET.labels(station=entry.station_id).set(
                alert["clock_offset_s"])
        else:
            with contextlib.suppress(KeyError):
                metrics.STATION_CLOCK_OFFSET.remove(entry.station_id)
        message = StationAlert(**{**alert, "detected_at": from_epoch(alert["detected_at"])})
        self.out.alert(self.out.station_alerts, entry.station_id, codec.dumps(message),
                       alert["alert_type"], f"clock off by {alert['clock_offset_s']:.0f} s")

    def _check_contract(self, entry: StationEntry, config: StationConfig) -> None:
        now = time.time()
        load = entry.state.load_kw(now, self.tunables.stale_after_s)
        alert = contract_alert(entry.station_id, load, config.contract_max_kw, entry.alarm, now)
        if alert is None:
            return
        self.store.write_now(entry)
        metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
        self.out.alert(
            self.out.overload_alerts, entry.station_id, overload_message(alert),
            alert["alert_type"],
            f"{alert['total_power_kw']:.1f} kW vs contract {config.contract_max_kw:.1f}",
        )

    def flush_zone_loads(self, max_zones: int | None = None) -> int:
        """One `loads` message per zone for what changed since the last flush (for at most
        `max_zones` zones: the caller yields to the loop between chunks); returns how many."""
        sent = 0
        for zone_id in list(self._changed)[:max_zones]:
            entries = self._changed.pop(zone_id)
            stations = []
            for entry in entries.values():
                entry.mark_forwarded()
                stations.append(StationLoad(
                    station_id=entry.station_id,
                    connectors=[
                        (c.connector_id, c.connector_type, c.power_kw, c.event_ts, c.session_id,
                         c.arrival_ts)
                        for c in entry.state.connectors.values()
                    ],
                ))
            message = ZoneLoads(zone_id=zone_id, stations=stations)
            self.out.send(self.out.station_load, zone_id, codec.dumps(message))
            sent += 1
        return sent

    def reforward(self, partitions: set[int]) -> None:
        """After a rebalance: tell every zone owner about our stations again, so a new owner
        gets the whole picture (it stays cold until it has)."""
        for partition in partitions:
            for entry in self.store.in_partition(partition):
                if entry.config is not None:
                    self._send_joined(entry.config)
                    self._changed[entry.config.zone_id][entry.station_id] = entry
        self.flush_zone_loads()

    # -- zone mappings ---------------------------------------------------------------------

    def on_mapping(self, station_id: str, partition: int, config: StationConfig | None) -> None:
        """A station's new mapping (None: removed). Runs inside the config agent's event."""
        entry = self.store.entry(station_id, partition)
        old = entry.config
        if old is not None and (config is None or old.zone_id != config.zone_id):
            left = StationLeft(zone_id=old.zone_id, station_id=station_id)
            self.out.send(self.out.station_load, old.zone_id, codec.dumps(left))
        self.store.set_config(entry, config)
        if config is None:
            return
        if station_id in self.unmapped:
            self.unmapped.discard(station_id)
            metrics.STATIONS_UNMAPPED.set(len(self.unmapped))
        self._send_joined(config)
        self._changed[config.zone_id][station_id] = entry
        self.flush_zone_loads()

    def _send_joined(self, config: StationConfig) -> None:
        self.out.send(self.out.station_load, config.zone_id,
                      codec.dumps(joined_message(config)))

    def forget_partitions(self) -> None:
        self.unmapped.clear()
        metrics.STATIONS_UNMAPPED.set(0)
        self._changed.clear()
