"""The delivery rules of `evgrid gateway`, as a pure ledger (no I/O; `now` is passed in).

Per station the ledger holds at most one command in flight and one pending (the newest not
yet sent). Rules: a `command_id` already seen is never sent again; a newer command makes the
pending one `Superseded`; a command for a charger that is not connected gets one interim
`Offline` and waits for the next BootNotification, or ends `Expired` at its `validTo`
(`dr_end_ts`; a CLEAR past it is still sent to a connected charger).

Several gateway instances share the work: every instance reads every command and every
outcome, but only the instance *responsible* for a station publishes its outcomes — the one
holding (or last holding) its connection according to `ocpp.station_status`, or, for a
station no instance has seen, its home instance by a stable hash over the instance list.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from evgrid.models.gateway import FINAL_STATUSES

_FINALS_KEPT = 200_000


@dataclass
class Command:
    """The fields of a command the gateway acts on; `raw` is the message as received."""

    command_id: str
    station_id: str
    action: str
    signal_id: str | None
    command_ts: datetime
    valid_to: datetime
    raw: dict
    attempt: int = 0
    offline_sent: bool = False


@dataclass(frozen=True)
class Outcome:
    command: Command
    status: str
    reason: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Send:
    """Deliver the station's pending command now."""

    station_id: str


Effect = Outcome | Send


@dataclass
class _Station:
    pending: Command | None = None
    in_flight: Command | None = None
    holder: str | None = None
    connected_here: bool = False


def _lapsed(cmd: Command, now: datetime, connected: bool) -> bool:
    """A SET past its validTo is pointless (the charger would drop the profile); a CLEAR past
    it is still sent to a connected charger, and lapses only for one that is away."""
    return cmd.valid_to <= now and (cmd.action != "CLEAR" or not connected)


def home_instance(station_id: str, instances: tuple[str, ...]) -> str:
    return instances[zlib.crc32(station_id.encode()) % len(instances)]


@dataclass
class Ledger:
    instance_id: str
    instances: tuple[str, ...]
    stations: dict[str, _Station] = field(default_factory=dict)
    finals: OrderedDict[str, str] = field(default_factory=OrderedDict)
    offline_seen: set[str] = field(default_factory=set)

    def _station(self, station_id: str) -> _Station:
        st = self.stations.get(station_id)
        if st is None:
            st = self.stations[station_id] = _Station()
        return st

    def responsible(self, station_id: str) -> bool:
        st = self.stations.get(station_id)
        holder = st.holder if st else None
        return (holder or home_instance(station_id, self.instances)) == self.instance_id

    def _mark_final(self, command_id: str, status: str) -> None:
        self.finals[command_id] = status
        self.offline_seen.discard(command_id)
        while len(self.finals) > _FINALS_KEPT:
            self.finals.popitem(last=False)

    def _ours(self, outcome: Outcome) -> list[Effect]:
        """Outcomes are published by the responsible instance only; all mark them."""
        if outcome.final:
            self._mark_final(outcome.command.command_id, outcome.status)
        else:
            outcome.command.offline_sent = True
            self.offline_seen.add(outcome.command.command_id)
        return [outcome] if self.responsible(outcome.command.station_id) else []

    def _known(self, st: _Station, command_id: str) -> bool:
        return command_id in self.finals or any(
            c is not None and c.command_id == command_id for c in (st.pending, st.in_flight)
        )

    # --- inputs -------------------------------------------------------------------------
    def on_command(self, cmd: Command, now: datetime) -> list[Effect]:
        st = self._station(cmd.station_id)
        if self._known(st, cmd.command_id):
            return []
        cmd.offline_sent = cmd.command_id in self.offline_seen
        if _lapsed(cmd, now, st.connected_here):
            return self._ours(Outcome(cmd, "Expired", "validTo passed before delivery"))
        effects: list[Effect] = []
        older = st.pending
        if older is not None and older.command_ts > cmd.command_ts:
            return self._ours(Outcome(cmd, "Superseded", f"newer command {older.command_id}"))
        if older is not None:
            effects += self._ours(Outcome(older, "Superseded", f"newer command {cmd.command_id}"))
        st.pending = cmd
        if st.connected_here:
            if st.in_flight is None:
                effects.append(Send(cmd.station_id))
        elif not cmd.offline_sent:
            effects += self._ours(Outcome(cmd, "Offline", "charger not connected"))
        return effects

    def on_outcome(self, command_id: str, status: str) -> None:
        """An outcome on the topic (ours or another instance's): never act on it twice."""
        if status not in FINAL_STATUSES:
            self.offline_seen.add(command_id)
            return
        self._mark_final(command_id, status)
        for st in self.stations.values():
            if st.pending is not None and st.pending.command_id == command_id:
                st.pending = None

    def on_holder(self, station_id: str, gateway_id: str, connected: bool) -> None:
        """`ocpp.station_status` from any instance: who holds the charger now."""
        st = self._station(station_id)
        if connected:
            st.holder = gateway_id
        elif st.holder in (None, gateway_id):
            st.holder = gateway_id  # last holder stays responsible while it is away

    def on_boot(self, station_id: str) -> list[Effect]:
        st = self._station(station_id)
        st.connected_here = True
        st.holder = self.instance_id
        return [Send(station_id)] if st.pending is not None and st.in_flight is None else []

    def on_disconnect(self, station_id: str) -> list[Effect]:
        st = self._station(station_id)
        st.connected_here = False
        cmd, st.in_flight = st.in_flight, None
        if cmd is None:
            return []
        if st.pending is None:
            st.pending = cmd  # back in the queue for the next boot
        elif st.pending.command_id != cmd.command_id:
            return self._ours(Outcome(cmd, "Superseded", f"newer command {st.pending.command_id}"))
        return [] if cmd.offline_sent else self._ours(
            Outcome(cmd, "Offline", "charger disconnected during delivery"))

    # --- delivery -----------------------------------------------------------------------
    def take(self, station_id: str, now: datetime) -> tuple[Command | None, list[Effect]]:
        """The command to send now (moved in flight), or None; expired ones end here."""
        st = self._station(station_id)
        cmd = st.pending
        if cmd is None or st.in_flight is not None or not st.connected_here:
            return None, []
        st.pending = None
        if _lapsed(cmd, now, connected=True):
            return None, self._ours(Outcome(cmd, "Expired", "validTo passed before delivery"))
        cmd.attempt += 1
        st.in_flight = cmd
        return cmd, []

    def retry(self, station_id: str) -> bool:
        """One retry on timeout: True when this was the first attempt."""
        st = self._station(station_id)
        if st.in_flight is None or st.in_flight.attempt >= 2:
            return False
        st.in_flight.attempt += 1
        return True

    def delivered(self, station_id: str, status: str, reason: str | None) -> list[Effect]:
        """The charger answered (or timed out twice): the in-flight command's final outcome,
        then the pending one, if any, goes next."""
        st = self._station(station_id)
        cmd, st.in_flight = st.in_flight, None
        if cmd is None:
            return []
        effects = self._ours(Outcome(cmd, status, reason))
        if st.pending is not None and st.connected_here:
            effects.append(Send(station_id))
        return effects

    def expire(self, now: datetime) -> list[Effect]:
        """Pending commands past their validTo (chargers that never came back)."""
        effects: list[Effect] = []
        for st in self.stations.values():
            if (st.pending is not None and st.in_flight is None
                    and _lapsed(st.pending, now, st.connected_here)):
                cmd, st.pending = st.pending, None
                effects += self._ours(Outcome(cmd, "Expired",
                                              "charger did not reconnect before validTo"))
        return effects
