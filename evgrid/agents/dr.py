"""DR signals: their own consumer (`evgrid.ingest.handlers.SignalIngest`), so nothing queues
in front of them.

A signal is decoded, re-routed when its key or partition is not its zone's, and handed to the
zone's controller at once; a zone loaded after a rebalance that is still cold (waiting for its
stations' loads) holds the signal until it is warm, so no decision is made on half a picture.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from evgrid import codec, metrics
from evgrid.agents.decisions import publish_decisions
from evgrid.agents.zone import ZoneStage
from evgrid.codec import DecodeError
from evgrid.core.control import Decisions
from evgrid.ingest.routing import Router
from evgrid.models import DemandResponseSignal, SignalRefusedAlert
from evgrid.models.signals import dr_signal_from_model
from evgrid.publisher import Publisher, Record
from evgrid.settings import Settings
from evgrid.state.zones import ZoneEntry
from evgrid.timeutil import from_epoch


class DRSignals:
    def __init__(self, settings: Settings, stage: ZoneStage, publisher: Publisher,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.stage = stage
        self.out = publisher
        self.clock = clock
        self.router = Router(settings.partitions, settings.topics.dr_repartition, publisher)

    def on_message(self, record: Record) -> None:
        received = time.perf_counter()
        if record.timestamp and record.topic != self.router.repartition_topic:
            # Kafka's timestamp, in ms (the producer's clock): how long it waited for us.
            metrics.DR_SIGNAL_WAIT.observe(max(0.0, time.time() - record.timestamp / 1000))
        try:
            sig = codec.decode(DemandResponseSignal, record.value,
                               self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(record, err)
            return
        if self.router.rerouted(record, sig.zone_id):
            return
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
        publish_decisions(self.out, zone, decisions, now)
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
