"""DR signals: their own consumer (`evgrid.ingest.records.SignalIngest`), so nothing queues
in front of them.

A signal (decoded and re-routed by the input path) is handed to the zone's controller at once;
a zone whose rows are still being read back after a rebalance is cold and holds the signal
until it is warm, so no decision is made on half a picture.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.core.control import Decisions
from evgrid.handlers.decisions import publish_decisions
from evgrid.handlers.zone import ZoneStage
from evgrid.models import DemandResponseSignal, SignalRefusedAlert
from evgrid.models.signals import dr_signal_from_model
from evgrid.publisher import Publisher, Record
from evgrid.settings import WorkerSettings
from evgrid.state.zones import ZoneEntry
from evgrid.timeutil import from_epoch


class DRSignals:
    def __init__(self, settings: WorkerSettings, stage: ZoneStage, publisher: Publisher,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.stage = stage
        self.out = publisher
        self.clock = clock
        self.repartition_topic = settings.internal_topics.dr_repartition

    def on_signal(self, sig: DemandResponseSignal, record: Record) -> None:
        received = time.perf_counter()
        if record.timestamp and record.topic != self.repartition_topic:
            # Kafka's timestamp, in ms (the producer's clock): how long it waited for us.
            metrics.DR_SIGNAL_WAIT.observe(max(0.0, time.time() - record.timestamp / 1000))
        now = self.clock()
        zone = self.stage.zones.zone(sig.zone_id, now)
        if not zone.warm(now):
            metrics.DR_DEFERRED.inc()
            zone.pending_signals.append((sig, record, received))
            return
        self.apply(zone, sig, record, now, received)

    def apply(self, zone: ZoneEntry, sig: DemandResponseSignal, record: Record, now: float,
              received: float) -> None:
        zone.reacting[sig.signal_id] = received
        decisions = zone.controller.on_signal(dr_signal_from_model(sig), zone.load.stations,
                                              now)
        self._refuse(record, decisions, now)
        publish_decisions(self.out, zone, decisions, now, self.settings.stale_after_s)
        self.stage.zones.persist(zone)

    def _refuse(self, record: Record, decisions: Decisions, now: float) -> None:
        """A signal the zone will not take is bad input: dead-lettered every time, alerted
        once per episode."""
        for refused in decisions.refused:
            self.out.deadletter(record, DecodeError(refused.reason, refused.detail))
            if refused.first_in_episode:
                alert = SignalRefusedAlert(
                    alert_type="TOO_MANY_EVENTS", zone_id=refused.zone_id,
                    signal_id=refused.signal_id, detail=refused.detail,
                    detected_at=from_epoch(now))
                self.out.alert(self.out.signal_alerts, refused.zone_id, codec.dumps(alert),
                               alert.alert_type, refused.detail)

    def apply_pending(self, zone: ZoneEntry, now: float) -> None:
        """The zone is warm now: the signals it held, in arrival order."""
        pending, zone.pending_signals = zone.pending_signals, []
        for sig, record, received in pending:
            self.apply(zone, sig, record, now, received)  # type: ignore[arg-type]
