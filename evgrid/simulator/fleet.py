"""The fleet model: stations, connectors, sessions and how they answer charging limits.

Pure and seeded: the same seed gives the same fleet and the same sessions, so a demo run or a
benchmark is repeatable. Time is passed in; the runner decides how fast it flows.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: (connector type, max kW, phases) — a charging network's usual mix.
CONNECTOR_KINDS: tuple[tuple[str, float], ...] = (
    ("CCS", 150.0),
    ("CCS", 350.0),
    ("CHAdeMO", 50.0),
    ("Type2", 11.0),
    ("Type2", 22.0),
)
AC_VOLTAGE = 230.0


@dataclass(slots=True)
class Session:
    session_id: str
    soc: float  # 0..100
    target_soc: float
    capacity_kwh: float
    vehicle_max_kw: float
    energy_kwh: float = 0.0


@dataclass(slots=True)
class SimConnector:
    connector_id: int
    connector_type: str
    max_kw: float
    session: Session | None = None
    limit_kw: float | None = None  # from the last SET, once applied
    power_kw: float = 0.0

    @property
    def is_ac(self) -> bool:
        return self.connector_type == "Type2"

    def wanted_kw(self) -> float:
        """What the car would draw with no limit: DC tapers above 50 % SoC."""
        s = self.session
        if s is None:
            return 0.0
        peak = min(self.max_kw, s.vehicle_max_kw)
        if self.is_ac:
            return peak
        if s.soc <= 50.0:
            return peak
        return peak * max(0.1, 1.0 - 0.9 * (s.soc - 50.0) / 50.0)


@dataclass(slots=True)
class SimStation:
    station_id: str
    zone_id: str
    connectors: list[SimConnector]
    ignores_commands: bool = False
    station_limit_kw: float | None = None
    site_id: str | None = None
    pending: list[tuple[float, float | None, dict[int, float]]] = field(default_factory=list)

    @property
    def max_station_kw(self) -> float:
        return sum(c.max_kw for c in self.connectors)

    def load_kw(self) -> float:
        return sum(c.power_kw for c in self.connectors)


class Fleet:
    """N stations over Z zones with Poisson session arrivals."""

    def __init__(
        self,
        stations: int,
        zones: int,
        seed: int = 1,
        arrivals_per_hour: float = 1.5,
        ignore_fraction: float = 0.0,
        command_lag_s: float = 5.0,
        initial_occupancy: float = 0.6,
        site_size: int = 0,
        site_share: float = 0.5,
    ) -> None:
        """`site_size` > 0: each zone's stations are grouped, in order, into sites (depots) of
        that many, each behind a limit of `site_share` of its stations' summed maximum, so
        that a busy depot exceeds it."""
        self.rng = random.Random(seed)
        self.arrivals_per_hour = arrivals_per_hour
        self.command_lag_s = command_lag_s
        self.zone_ids = [f"Z{z + 1}" for z in range(zones)]
        self.stations: dict[str, SimStation] = {}
        self._sessions = 0
        for i in range(stations):
            kinds = self.rng.choice(
                [
                    [CONNECTOR_KINDS[0], CONNECTOR_KINDS[2]],
                    [CONNECTOR_KINDS[1], CONNECTOR_KINDS[1]],
                    [CONNECTOR_KINDS[0], CONNECTOR_KINDS[0]],
                    [CONNECTOR_KINDS[4], CONNECTOR_KINDS[4]],
                    [CONNECTOR_KINDS[3], CONNECTOR_KINDS[4]],
                ]
            )
            connectors = [
                SimConnector(n + 1, kind, max_kw) for n, (kind, max_kw) in enumerate(kinds)
            ]
            st = SimStation(
                station_id=f"ST-{i + 1:05d}",
                zone_id=self.zone_ids[i % zones],
                connectors=connectors,
                ignores_commands=self.rng.random() < ignore_fraction,
            )
            for c in connectors:
                if self.rng.random() < initial_occupancy:
                    c.session = self._new_session(c)
            self.stations[st.station_id] = st
        #: site_id -> its `config.sites` record.
        self.sites: dict[str, dict] = {}
        if site_size > 0:
            self._group_sites(site_size, site_share)

    def _group_sites(self, size: int, share: float) -> None:
        for zone_id in self.zone_ids:
            members = [st for st in self.stations.values() if st.zone_id == zone_id]
            for n in range(0, len(members), size):
                group = members[n:n + size]
                site_id = f"SITE-{zone_id}-{n // size + 1}"
                for st in group:
                    st.site_id = site_id
                self.sites[site_id] = {
                    "site_id": site_id, "zone_id": zone_id, "margin_pct": 5.0,
                    "max_kw": round(share * sum(st.max_station_kw for st in group), 1),
                }

    def site_load_kw(self, site_id: str) -> float:
        return sum(st.load_kw() for st in self.stations.values() if st.site_id == site_id)

    def _new_session(self, c: SimConnector) -> Session:
        self._sessions += 1
        vehicle_max = 11.0 if c.is_ac and c.max_kw <= 11 else self.rng.choice([50, 100, 150, 250])
        if c.is_ac:
            vehicle_max = min(c.max_kw, self.rng.choice([11.0, 22.0]))
        return Session(
            session_id=f"sess-{self._sessions}",
            soc=self.rng.uniform(10.0, 45.0),
            target_soc=self.rng.uniform(80.0, 100.0),
            capacity_kwh=self.rng.choice([40.0, 60.0, 77.0, 100.0]),
            vehicle_max_kw=float(vehicle_max),
        )

    def station_config(self, st: SimStation) -> dict:
        types: dict[str, float] = {}
        for c in st.connectors:
            types[c.connector_type] = max(types.get(c.connector_type, 0.0), c.max_kw)
        return {
            "station_id": st.station_id,
            "zone_id": st.zone_id,
            "max_station_kw": st.max_station_kw,
            "contract_max_kw": round(st.max_station_kw * 0.9, 1),
            "connector_max_kw": types,
            **({"site_id": st.site_id} if st.site_id else {}),
        }

    def command(self, now: float, message: dict) -> bool:
        """A SET/CLEAR for one of our stations, applied after the lag (unless it ignores)."""
        st = self.stations.get(message.get("station_id", ""))
        if st is None:
            return False
        if message.get("action") == "CLEAR":
            st.pending.append((now + self.command_lag_s, None, {}))
        else:
            per_connector = {
                c["connector_id"]: float(c["limit_kw"]) for c in message.get("connectors", [])
            }
            st.pending.append(
                (now + self.command_lag_s, float(message["target_power_kw"]), per_connector)
            )
        return True

    def step(self, now: float, dt_s: float) -> None:
        """Advance every session by dt (simulated seconds) and apply due commands."""
        p_arrival = 1.0 - math.exp(-self.arrivals_per_hour * dt_s / 3600.0)
        for st in self.stations.values():
            while st.pending and st.pending[0][0] <= now:
                _, limit, per_connector = st.pending.pop(0)
                if st.ignores_commands:
                    continue
                st.station_limit_kw = limit
                for c in st.connectors:
                    c.limit_kw = per_connector.get(c.connector_id) if limit is not None else None
            for c in st.connectors:
                if c.session is None:
                    if self.rng.random() < p_arrival:
                        c.session = self._new_session(c)
                    continue
            self._apply_power(st)
            for c in st.connectors:
                s = c.session
                if s is None:
                    continue
                kwh = c.power_kw * dt_s / 3600.0
                s.energy_kwh += kwh
                s.soc = min(100.0, s.soc + 100.0 * kwh / s.capacity_kwh)
                if s.soc >= s.target_soc:
                    c.session = None
                    c.power_kw = 0.0

    def _apply_power(self, st: SimStation) -> None:
        for c in st.connectors:
            want = c.wanted_kw()
            if c.limit_kw is not None:
                want = min(want, c.limit_kw)
            c.power_kw = want
        limit = st.station_limit_kw
        total = st.load_kw()
        if limit is not None and total > limit > 0:
            scale = limit / total
            for c in st.connectors:
                c.power_kw *= scale
        elif limit is not None and limit <= 0:
            for c in st.connectors:
                c.power_kw = 0.0

    def readings(self, now_iso: str) -> list[dict]:
        """One meter value per connector, in `ocpp.meter_values` shape."""
        out = []
        for st in self.stations.values():
            for c in st.connectors:
                s = c.session
                volts = AC_VOLTAGE if c.is_ac else 400.0
                phases = 3 if c.is_ac else 1
                out.append(
                    {
                        "station_id": st.station_id,
                        "connector_id": c.connector_id,
                        "session_id": s.session_id if s else None,
                        "connector_type": c.connector_type,
                        "power_kw": round(c.power_kw, 3),
                        "current_a": round(c.power_kw * 1000 / (volts * phases), 2),
                        "voltage_v": volts,
                        "energy_kwh": round(s.energy_kwh, 3) if s else 0.0,
                        "soc_percent": None if (s is None or c.is_ac) else round(s.soc),
                        "event_ts": now_iso,
                    }
                )
        return out

    def zone_load_kw(self, zone_id: str) -> float:
        return sum(st.load_kw() for st in self.stations.values() if st.zone_id == zone_id)
