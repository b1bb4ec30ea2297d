"""Command outcomes from `evgrid gateway` (`ocpp.commands.outcomes`, key `station_id`).

An outcome names a station, but the decision it changes belongs to the station's zone: this
agent, co-partitioned with the station side, looks up the station's zone and tells the zone's
owner, where the controller marks the station uncontrollable (not Accepted) or controllable
again (Accepted) and re-allocates the cap.
"""

from __future__ import annotations

from evgrid import codec, metrics
from evgrid.codec import DecodeError
from evgrid.ingest.routing import Router
from evgrid.models.inputs import GatewayOutcome
from evgrid.models.internal import StationOutcome
from evgrid.publisher import Publisher, Record
from evgrid.settings import Settings
from evgrid.state.stations import StationStore


class CommandOutcomes:
    def __init__(self, settings: Settings, stations: StationStore, publisher: Publisher) -> None:
        self.settings = settings
        self.stations = stations
        self.out = publisher
        self.router = Router(settings.partitions, settings.topics.outcomes_repartition,
                             publisher)

    def on_message(self, record: Record) -> None:
        try:
            outcome = codec.decode(GatewayOutcome, record.value, self.settings.max_message_bytes)
        except DecodeError as err:
            self.out.deadletter(record, err)
            return
        station_id = outcome.station_id
        if self.router.rerouted(record, station_id):
            return
        entry = self.stations.get(station_id)
        if entry is None or entry.config is None:
            metrics.OUTCOMES_UNMAPPED.inc()  # a station evgrid does not map: nothing to change
            return
        message = StationOutcome(
            zone_id=entry.config.zone_id, station_id=station_id, command_id=outcome.command_id,
            status=outcome.status, reason=outcome.reason, ts=outcome.ts.timestamp(),
        )
        self.out.send(self.out.station_load, message.zone_id, codec.dumps(message))
