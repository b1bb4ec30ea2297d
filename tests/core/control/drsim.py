"""A tiny zone of obedient (or not) stations for the controller tests: loads in, decisions
applied back as the chargers would apply them."""

from __future__ import annotations

from evgrid.core.control import Decisions, ZoneController
from evgrid.core.lifecycle import DRSignal
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables

T0 = 1_800_000_000.0


def signal(
    signal_id: str = "E1", kind: str = "CURTAIL", kw: float | None = None, *,
    pct: float | None = None, cap: float | None = None, start: float = T0,
    end: float = T0 + 3600, priority: int = 2, received: float = T0 - 60, zone: str = "Z1",
) -> DRSignal:
    return DRSignal(signal_id, zone, kind, kw, start, end, priority, received, pct, cap)


class SimZone:
    """Stations with an uncurtailed load each; `obey` makes commanded stations draw
    min(uncurtailed, target) and cleared ones their uncurtailed load again."""

    def __init__(self, loads: dict[str, float], tunables: Tunables | None = None,
                 connector_type: str = "CCS", zone_id: str = "Z1") -> None:
        self.zone_id = zone_id
        self.uncurtailed = dict(loads)
        self.loads = dict(loads)
        self.connector_type = connector_type
        self.t = tunables or Tunables(compliance_grace_s=20.0)
        self.ctl = ZoneController(zone_id, self.t)
        self.disobey: set[str] = set()

    def rows(self, now: float) -> dict[str, StationRow]:
        return {
            station_id: StationRow(
                StationConfig(station_id, self.zone_id, 400.0, 400.0),
                (ConnectorReading(1, self.connector_type, kw, now - 1,
                                  "sess" if kw > 0 else None),),
            )
            for station_id, kw in self.loads.items()
        }

    def obey(self, d: Decisions) -> Decisions:
        for cmd in d.commands:
            if cmd.station_id not in self.loads or cmd.station_id in self.disobey:
                continue
            full = self.uncurtailed[cmd.station_id]
            if cmd.action == "SET":
                assert cmd.target_power_kw is not None
                self.loads[cmd.station_id] = min(full, cmd.target_power_kw)
            else:
                self.loads[cmd.station_id] = full
        return d

    def send(self, sig: DRSignal, now: float) -> Decisions:
        return self.obey(self.ctl.on_signal(sig, self.rows(now), now))

    def tick(self, now: float) -> Decisions:
        return self.obey(self.ctl.on_tick(self.rows(now), now))


def sets(d: Decisions) -> dict[str, float]:
    return {c.station_id: c.target_power_kw for c in d.commands if c.action == "SET"}


def clears(d: Decisions) -> list[str]:
    return [c.station_id for c in d.commands if c.action == "CLEAR"]
