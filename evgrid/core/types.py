"""Plain data the pure core passes around.

The core never sees Kafka, pydantic or the clock: times are epoch seconds (float) handed in
by the caller, so hours of events can be replayed in tests in milliseconds.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass

DC_TYPES = frozenset({"CCS", "CHAdeMO"})
AC_TYPES = frozenset({"Type2"})
CONNECTOR_TYPES = DC_TYPES | AC_TYPES


@dataclass(frozen=True, slots=True)
class Tunables:
    """The knobs the core reads, with their defaults: the one place each default is stated
    (`WorkerSettings` takes its fields' defaults from here). Built from
    `WorkerSettings.tunables()`."""

    stale_after_s: float = 120.0
    dead_band_kw: float = 1.0
    compliance_tolerance_pct: float = 5.0
    compliance_tolerance_kw: float = 1.0
    compliance_grace_s: float = 60.0
    window_s: float = 60.0
    allowed_lateness_s: float = 60.0
    dc_min_kw: float = 5.0
    ac_min_current_a: float = 6.0
    ac_voltage_v: float = 230.0
    ac_phases: int = 3
    overload_hysteresis_pct: float = 2.0
    event_retention_s: float = 86_400.0
    connector_forget_s: float = 86_400.0
    # Scheduled or active DR events a zone holds at most; a signal beyond is refused.
    max_events_per_zone: int = 32
    # -- chargers' clocks and suspension rotation --
    future_tolerance_s: float = 60.0
    clock_skew_alert_s: float = 300.0
    suspend_rotation_s: float = 300.0
    # -- sites --
    site_hold_s: float = 300.0
    site_release_hysteresis_pct: float = 10.0
    site_profile_valid_s: float = 86_400.0
    site_step_s: float = 5.0
    # -- frequency response --
    frequency_silence_s: float = 5.0


#: The defaults, for the core's callers (mostly tests) that leave a knob out.
DEFAULTS = Tunables()


#: One shared string per connector type, so 100k readings do not hold 100k copies of "CCS".
_TYPE_NAMES = {name: name for name in CONNECTOR_TYPES}


@dataclass(slots=True)
class ConnectorReading:
    """The latest reading of one connector, as far as evgrid needs it.

    `arrival_ts` is when evgrid heard it (the Kafka record's timestamp; see core/clock.py):
    liveness and staleness go by it, `event_ts` orders readings. Left out, it is taken equal
    to `event_ts` (a charger with a right clock)."""

    connector_id: int
    connector_type: str
    power_kw: float
    event_ts: float
    session_id: str | None = None
    current_a: float = 0.0
    voltage_v: float = 0.0
    energy_kwh: float = 0.0
    soc_percent: int | None = None
    arrival_ts: float = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.arrival_ts is None:
            self.arrival_ts = self.event_ts
        self.connector_type = _TYPE_NAMES.get(self.connector_type, self.connector_type)

    @property
    def session_active(self) -> bool:
        return self.session_id is not None or self.power_kw > 0.0

    def to_dict(self) -> dict:
        return {
            "connector_id": self.connector_id,
            "connector_type": self.connector_type,
            "power_kw": self.power_kw,
            "event_ts": self.event_ts,
            "session_id": self.session_id,
            "current_a": self.current_a,
            "voltage_v": self.voltage_v,
            "energy_kwh": self.energy_kwh,
            "soc_percent": self.soc_percent,
            "arrival_ts": self.arrival_ts,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ConnectorReading:
        return cls(**d)

    def is_live(self, now: float, stale_after_s: float) -> bool:
        """Heard from within the stale limit (by arrival, whatever the charger's clock)."""
        return now - self.arrival_ts <= stale_after_s


def live_power_kw(reading: ConnectorReading, now: float, stale_after_s: float) -> float:
    """A connector's contribution to its station's load: 0 once it is stale (by arrival)."""
    return reading.power_kw if now - reading.arrival_ts <= stale_after_s else 0.0


#: Distinct connector-limit sets, each held once (read-only: never mutate a config's limits).
_LIMITS: dict[tuple[tuple[str, float], ...], dict[str, float]] = {}
#: A fleet has a handful; past this many, new sets are not shared (bounded, whatever comes in).
_LIMITS_MAX = 10_000


def shared_limits(limits: dict[str, float] | None) -> dict[str, float] | None:
    """The one shared dict equal to `limits` (None and {} stay as they are)."""
    if not limits:
        return limits
    key = tuple(sorted(limits.items()))
    found = _LIMITS.get(key)
    if found is None:
        found = dict(key)
        if len(_LIMITS) < _LIMITS_MAX:
            _LIMITS[key] = found
    return found


@dataclass(slots=True)
class StationConfig:
    """One station's entry of `config.station_zones`."""

    station_id: str
    zone_id: str
    max_station_kw: float
    contract_max_kw: float
    connector_max_kw: dict[str, float] | None = None
    profile_mode: str = "station"  # "station" (station-wide max profile) | "connector"
    stack_level: int = 1
    #: When the mapping was taken (ms since the epoch, the mapping record's Kafka time): of two
    #: rows of one station in different zones' partitions, the later mapping wins.
    mapped_at: int = 0
    #: The site (grid connection) the station is behind, if any.
    site_id: str | None = None

    def __post_init__(self) -> None:
        # Every station holds a config on the station side and another on the zone side:
        # the zone id and the connector limits, alike across a fleet, are shared, not copied.
        self.zone_id = sys.intern(self.zone_id)
        self.profile_mode = sys.intern(self.profile_mode)
        self.connector_max_kw = shared_limits(self.connector_max_kw)

    def ceiling_kw(self, connector_types: list[str] | None = None) -> float:
        """M of the allocation rule: the least of the station limit, the contract and the
        connectors' limits."""
        ceiling = min(self.max_station_kw, self.contract_max_kw)
        if self.connector_max_kw and connector_types:
            total = sum(self.connector_max_kw.get(t, math.inf) for t in connector_types)
            ceiling = min(ceiling, total)
        return ceiling

    def to_dict(self) -> dict:
        return {
            "station_id": self.station_id,
            "zone_id": self.zone_id,
            "max_station_kw": self.max_station_kw,
            "contract_max_kw": self.contract_max_kw,
            "connector_max_kw": self.connector_max_kw,
            "profile_mode": self.profile_mode,
            "stack_level": self.stack_level,
            "mapped_at": self.mapped_at,
            "site_id": self.site_id,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationConfig:
        return cls(**d)


def in_connector_order(readings: Iterable[ConnectorReading]) -> tuple[ConnectorReading, ...]:
    """A station row's connectors: one reading each (the last given wins), by connector id.
    Readings already in strictly increasing id order (as a station side sends them) are
    kept as they are."""
    out = tuple(readings)
    last = None
    for c in out:
        if last is not None and c.connector_id <= last:
            return tuple(sorted({c.connector_id: c for c in out}.values(),
                                key=lambda c: c.connector_id))
        last = c.connector_id
    return out


@dataclass(slots=True)
class StationRow:
    """What the zone side knows of one station: its config and its connectors' latest readings.

    This is the payload of the internal `evgrid-station-load` topic and of the zone tables.
    """

    config: StationConfig
    #: In connector-id order; a tuple, not a dict: the zone side holds one row per station,
    #: and a tuple is the smaller of the two.
    connectors: tuple[ConnectorReading, ...] = ()

    @property
    def station_id(self) -> str:
        return self.config.station_id

    def load_kw(self, now: float, stale_after_s: float) -> float:
        total = 0.0  # a plain loop, not sum() over a generator: asked per station per step
        for c in self.connectors:
            total += live_power_kw(c, now, stale_after_s)
        return total

    def last_heard_ts(self) -> float | None:
        """When evgrid last heard from any of the station's connectors (arrival time)."""
        return max((c.arrival_ts for c in self.connectors), default=None)

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "connectors": [c.to_dict() for c in self.connectors],
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationRow:
        conns = (ConnectorReading.from_dict(c) for c in d.get("connectors", ()))
        return cls(
            config=StationConfig.from_dict(d["config"]),
            connectors=in_connector_order(conns),
        )
