"""OCPP meter samples -> `ocpp.meter_values` messages (pure: no I/O, no clock).

Handlers receive payloads snake_cased by the `ocpp` package (`sampled_value`,
`unit_of_measure`). 1.6 carries values as strings in the unit given (W, kW, Wh, kWh, A, V,
Percent); 2.0.1 as numbers with a power-of-ten multiplier. Power comes from
`Power.Active.Import` (per-phase values summed when the charger sends no total); only when
it is absent from `Current.Import` × `Voltage` × phases. A sample with neither yields no
reading (the worker cannot use one without power); unknown measurands are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

POWER = "Power.Active.Import"
CURRENT = "Current.Import"
VOLTAGE = "Voltage"
ENERGY = "Energy.Active.Import.Register"
SOC = "SoC"
_DEFAULT_MEASURAND = ENERGY  # both versions: an absent measurand means the energy register
_SCALE = {"W": 0.001, "kW": 1.0, "Wh": 0.001, "kWh": 1.0, "A": 1.0, "V": 1.0, "Percent": 1.0}
_OUTLET = (None, "Outlet")


class SampleError(ValueError):
    """A sample the charger sent that cannot be read (a value that is not a number)."""


@dataclass
class _Values:
    """One timestamp's samples, by measurand: total (no phase) and per phase."""

    total: dict[str, float] = field(default_factory=dict)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, measurand: str, phase: str | None, value: float) -> None:
        if phase is None:
            self.total[measurand] = value
        else:
            self.phases.setdefault(measurand, {})[phase] = value

    def power_kw(self, default_phases: int) -> float | None:
        if POWER in self.total:
            return self.total[POWER]
        if POWER in self.phases:
            return sum(self.phases[POWER].values())
        volts = self.voltage_v()
        if volts is None:
            return None
        if CURRENT in self.phases:
            return sum(self.phases[CURRENT].values()) * volts / 1000.0
        if CURRENT in self.total:
            return self.total[CURRENT] * volts * default_phases / 1000.0
        return None

    def current_a(self) -> float:
        if CURRENT in self.phases:
            return max(self.phases[CURRENT].values())
        return self.total.get(CURRENT, 0.0)

    def voltage_v(self) -> float | None:
        if VOLTAGE in self.total:
            return self.total[VOLTAGE]
        if VOLTAGE in self.phases:
            # Phase-to-neutral readings (L1-N) are what current x voltage needs.
            neutral = [v for p, v in self.phases[VOLTAGE].items() if "-N" in p or "-" not in p]
            chosen = neutral or list(self.phases[VOLTAGE].values())
            return sum(chosen) / len(chosen)
        return None


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise SampleError("sampled value is a boolean")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SampleError(f"sampled value {raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SampleError("sampled value is not finite")
    return value


def _collect(samples: Iterable[dict], unit_of: Any) -> _Values:
    values = _Values()
    for s in samples:
        measurand = s.get("measurand") or _DEFAULT_MEASURAND
        if measurand not in (POWER, CURRENT, VOLTAGE, ENERGY, SOC):
            continue
        if s.get("location") not in _OUTLET and measurand != SOC:
            continue  # an inlet or EV-side meter is not the connector's draw
        unit, factor = unit_of(s, measurand)
        if unit not in _SCALE:
            continue
        values.add(measurand, s.get("phase"), _number(s.get("value")) * factor * _SCALE[unit])
    return values


def _unit_16(sample: dict, measurand: str) -> tuple[str, float]:
    return sample.get("unit") or _default_unit(measurand), 1.0


def _unit_201(sample: dict, measurand: str) -> tuple[str, float]:
    unit = sample.get("unit_of_measure") or {}
    return unit.get("unit") or _default_unit(measurand), 10.0 ** int(unit.get("multiplier", 0))


def _default_unit(measurand: str) -> str:
    return {POWER: "W", CURRENT: "A", VOLTAGE: "V", ENERGY: "Wh", SOC: "Percent"}[measurand]


@dataclass(frozen=True)
class Where:
    """Which connector a sample belongs to and what the gateway knows about it."""

    station_id: str
    connector_id: int
    session_id: str | None
    connector_type: str


def readings(
    where: Where, meter_values: Iterable[dict], version: str, default_phases: int = 3
) -> list[dict]:
    """One `ocpp.meter_values` message per timestamped meter value that carries power."""
    unit_of = _unit_16 if version == "1.6" else _unit_201
    out = []
    for mv in meter_values:
        values = _collect(mv.get("sampled_value") or (), unit_of)
        power = values.power_kw(default_phases)
        if power is None:
            continue
        soc = values.total.get(SOC)
        out.append({
            "station_id": where.station_id,
            "connector_id": where.connector_id,
            "session_id": where.session_id,
            "connector_type": where.connector_type,
            "power_kw": round(max(power, 0.0), 4),
            "current_a": round(values.current_a(), 3),
            "voltage_v": round(values.voltage_v() or 0.0, 2),
            "energy_kwh": round(max(values.total.get(ENERGY, 0.0), 0.0), 4),
            "soc_percent": None if soc is None else min(100, max(0, round(soc))),
            "event_ts": mv.get("timestamp"),
        })
    return out
