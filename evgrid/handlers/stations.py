"""The station side: meter values, zone mappings and command outcomes in; the zone's picture
out, on the station-rows topic in the zone's partition.

Synchronous and broker-free: the consumers hand it typed messages through the input path; it
calls the core, updates `StationStore`, and queues output on the publisher. A station's row
(zone, limits, readings, last outcome) goes out when its mapping or outcome changes, and is
tombstoned in a zone's partition it leaves; changed readings reach each zone's owner as one
loads record per zone (coalesced over a batch, or over an interval while the ingest is behind).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Any

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.core.clock import CLOCK_SKEW, FUTURE_REASON, in_future
from evgrid.core.overload import contract_alert
from evgrid.core.types import StationConfig
from evgrid.models import (
    OverloadAlert,
    StationAlert,
    StationZone,
    station_window,
)
from evgrid.models.inputs import GatewayOutcome, StationReading
from evgrid.models.internal import loads_key
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings
from evgrid.state.sites import Refused, SiteBook
from evgrid.state.stations import StationEntry, StationStore
from evgrid.state.tables_io import partition_of
from evgrid.timeutil import from_epoch, iso

#: Stations in one loads record at most (~200 bytes each with two connectors).
LOADS_RECORD_STATIONS = 1_000


def arrival_of(record: Record) -> float:
    """When the reading was heard: its Kafka timestamp, the same on a replay (so a replayed
    reading is judged as it was the first time); the worker's clock if it has none."""
    ts = getattr(record, "timestamp", None)
    return ts / 1000.0 if ts is not None and ts > 0 else time.time()


def overload_message(alert: dict) -> bytes:
    return codec.dumps(OverloadAlert(**{**alert, "detected_at": from_epoch(alert["detected_at"])}))


def config_of(sz: StationZone, record: Record) -> StationConfig:
    ts = getattr(record, "timestamp", None)
    return StationConfig(
        station_id=sz.station_id, zone_id=sz.zone_id, max_station_kw=sz.max_station_kw,
        contract_max_kw=sz.contract_max_kw,
        connector_max_kw=dict(sz.connector_max_kw) if sz.connector_max_kw else None,
        profile_mode=sz.profile_mode, stack_level=sz.stack_level,
        mapped_at=ts if ts is not None and ts > 0 else int(time.time() * 1000),
        site_id=sz.site_id,
    )


def connector_loads(entry: StationEntry) -> list[tuple]:
    """Each connector's latest reading as the zone side takes it (`ConnectorLoad`)."""
    return [(c.connector_id, c.connector_type, c.power_kw, c.event_ts, c.session_id,
             c.arrival_ts) for c in entry.state.connectors.values()]


def row_value(entry: StationEntry, config: StationConfig) -> dict[str, Any]:
    """The station's row (`evgrid.models.internal.StationRowMessage`), as plain data."""
    return {
        "kind": "row",
        "zone_id": config.zone_id,
        "station_id": entry.station_id,
        "limits": {
            "max_station_kw": config.max_station_kw,
            "contract_max_kw": config.contract_max_kw,
            "connector_max_kw": config.connector_max_kw,
            "profile_mode": config.profile_mode,
            "stack_level": config.stack_level,
        },
        "connectors": connector_loads(entry),
        "outcome": entry.outcome,
        "mapped_at": config.mapped_at,
        "site_id": config.site_id,
    }


class StationSide:
    """The station side of one worker: every station of the partitions it owns."""

    def __init__(self, settings: WorkerSettings, store: StationStore, publisher: Publisher,
                 sites: SiteBook | None = None) -> None:
        self.settings = settings
        self.sites = sites or SiteBook()
        self.tunables = settings.tunables()
        self.store = store
        self.out = publisher
        self.rows_topic = settings.internal_topics.station_rows
        self.heartbeat_s = self.tunables.stale_after_s / 4
        self.unmapped: set[str] = set()
        #: Stations whose readings each zone's owner must hear after this batch, by zone.
        self._changed: dict[str, dict[str, StationEntry]] = defaultdict(dict)
        #: A changed station is one its zone has never had a reading of.
        self.urgent = False
        self._zone_partitions: dict[str, int] = {}
        #: Readings applied and superseded since `count_readings` last told Prometheus: a
        #: counter increment per reading cost 2 % of the ingest.
        self.applied = 0
        self.superseded = 0

    # -- meter values ----------------------------------------------------------------------

    def on_meter_value(self, message: StationReading, record: Record) -> None:
        station_id, reading = message
        event_ts = reading.event_ts
        arrival_ts = reading.arrival_ts = arrival_of(record)
        entry = self.store.entry(station_id, record.partition)
        if in_future(event_ts, arrival_ts, self.tunables.future_tolerance_s):
            self._refuse_future(record, entry, event_ts, arrival_ts)
            return
        resets = entry.state.clock_resets
        if not entry.state.apply(reading):
            self.superseded += 1
            return
        self.applied += 1
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
            # A station its zone has no reading of yet is missing from the zone's picture:
            # its loads leave with the next batch, not the next interval.
            self.urgent = self.urgent or not entry.forwarded
            self._changed[config.zone_id][station_id] = entry

    def count_readings(self) -> None:
        """The readings counted since the last call, to `evgrid_readings_total` and
        `evgrid_readings_superseded_total` (the ingest calls it every slice of a batch)."""
        if self.applied:
            metrics.READINGS.inc(self.applied)
            self.applied = 0
        if self.superseded:
            metrics.READINGS_SUPERSEDED.inc(self.superseded)
            self.superseded = 0

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
        if not entry.alarm.active:
            # No episode, and none can start while even the sum of the latest readings (a
            # stale one counts 0 in the load; powers are never negative) is within the
            # contract: what the alarm would say, without the clock or the alarm.
            bound = 0.0
            for c in entry.state.connectors.values():
                bound += c.power_kw
            if bound <= config.contract_max_kw:
                return
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

    # -- zone mappings and outcomes --------------------------------------------------------

    def on_mapping(self, sz: StationZone | None, record: Record) -> None:
        """A station's new mapping (None: a tombstone, the station leaves evgrid)."""
        station_id = sz.station_id if sz is not None else (record.key or b"").decode()
        if sz is not None:
            try:  # a site of its own zone, or the mapping changes nothing
                self.sites.check_station(station_id, sz.zone_id, sz.site_id)
            except Refused as refused:
                self.out.deadletter(record, DecodeError(refused.reason, refused.detail))
                return
        config = config_of(sz, record) if sz is not None else None
        entry = self.store.entry(station_id, record.partition)
        old = entry.config
        if old is not None and (config is None or self.zone_partition(old.zone_id)
                                != self.zone_partition(config.zone_id)):
            # Its row leaves the old zone's partition (in the same partition the new row
            # replaces it, and the zone side sees the move).
            self.out.send(self.rows_topic, station_id, None,
                          partition=self.zone_partition(old.zone_id))
        self.store.set_config(entry, config)
        if old is not None:
            self._unchange(old.zone_id, station_id)
        if config is None:
            return
        if station_id in self.unmapped:
            self.unmapped.discard(station_id)
            metrics.STATIONS_UNMAPPED.set(len(self.unmapped))
        self._send_row(entry, config)

    def on_outcome(self, outcome: GatewayOutcome, record: Record) -> None:
        """The gateway's outcome of a command: it travels to the zone's owner with the row."""
        entry = self.store.get(outcome.station_id)
        if entry is None or entry.config is None:
            metrics.OUTCOMES_UNMAPPED.inc()  # a station evgrid does not map: nothing to change
            return
        entry.outcome = (outcome.command_id, outcome.status, outcome.reason,
                         outcome.ts.timestamp())
        self._unchange(entry.config.zone_id, outcome.station_id)
        self._send_row(entry, entry.config)

    # -- rows --------------------------------------------------------------------------------

    def zone_partition(self, zone_id: str) -> int:
        partition = self._zone_partitions.get(zone_id)
        if partition is None:
            partition = self._zone_partitions[zone_id] = partition_of(
                zone_id, self.settings.partitions)
        return partition

    def _send_row(self, entry: StationEntry, config: StationConfig) -> None:
        entry.mark_forwarded()
        self.out.send(self.rows_topic, entry.station_id, codec.dumps(row_value(entry, config)),
                      partition=self.zone_partition(config.zone_id))

    def _unchange(self, zone_id: str, station_id: str) -> None:
        """The station's row carries its readings: its zone's next loads need not."""
        changed = self._changed.get(zone_id)
        if changed is not None:
            changed.pop(station_id, None)
            if not changed:
                del self._changed[zone_id]

    def flush_loads(self, max_zones: int | None = None) -> int:
        """One loads record per zone for the stations whose readings changed since the last
        flush (for at most `max_zones` zones: the caller yields to the loop between chunks);
        returns how many."""
        sent = 0
        for zone_id in list(self._changed)[:max_zones]:
            entries = list(self._changed.pop(zone_id).values())
            # A record at most LOADS_RECORD_STATIONS stations long: a whole large zone in one
            # would pass the broker's (and EVGRID_MAX_MESSAGE_BYTES') message size.
            for start in range(0, len(entries), LOADS_RECORD_STATIONS):
                stations = []
                for entry in entries[start:start + LOADS_RECORD_STATIONS]:
                    entry.mark_forwarded()
                    stations.append({"station_id": entry.station_id,
                                     "connectors": connector_loads(entry)})
                self.out.send(self.rows_topic, loads_key(zone_id),
                              codec.dumps({"kind": "loads", "zone_id": zone_id,
                                           "stations": stations}),
                              partition=self.zone_partition(zone_id))
            sent += 1
        if not self._changed:
            self.urgent = False
        return sent

    def forget_partitions(self, owned: set[int]) -> None:
        """A new assignment: unmapped stations are counted again from what arrives, and rows
        of stations another worker owns now are theirs to send."""
        self.unmapped.clear()
        metrics.STATIONS_UNMAPPED.set(0)
        for zone_id, entries in list(self._changed.items()):
            kept = {sid: entry for sid, entry in entries.items() if entry.partition in owned}
            if kept:
                self._changed[zone_id] = kept
            else:
                del self._changed[zone_id]
