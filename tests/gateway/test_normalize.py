"""OCPP samples -> ocpp.meter_values, both versions (pure)."""

from __future__ import annotations

import pytest

from evgrid.gateway.normalize import SampleError, Where, readings
from evgrid.models import MeterValue

WHERE = Where("CP-1", 2, "77", "Type2")
TS = "2026-01-01T12:00:00Z"


def sv16(value: str, measurand: str | None = None, **kw: str) -> dict:
    out = {"value": value, **kw}
    if measurand:
        out["measurand"] = measurand
    return out


def test_16_power_in_watts_energy_and_soc_become_one_valid_reading() -> None:
    [r] = readings(WHERE, [{"timestamp": TS, "sampled_value": [
        sv16("7400", "Power.Active.Import", unit="W"),
        sv16("12345", "Energy.Active.Import.Register", unit="Wh"),
        sv16("55.4", "SoC", unit="Percent", location="EV"),
        sv16("3", "Frequency"),  # unknown to evgrid: ignored
    ]}], "1.6")
    assert (r["power_kw"], r["energy_kwh"], r["soc_percent"]) == (7.4, 12.345, 55)
    assert (r["station_id"], r["connector_id"], r["session_id"]) == ("CP-1", 2, "77")
    MeterValue.model_validate(r)  # exactly the worker's input contract


def test_16_per_phase_power_is_summed_and_kw_is_understood() -> None:
    [r] = readings(WHERE, [{"timestamp": TS, "sampled_value": [
        sv16("3.7", "Power.Active.Import", unit="kW", phase=p) for p in ("L1", "L2", "L3")
    ]}], "1.6")
    assert r["power_kw"] == pytest.approx(11.1)


def test_current_times_voltage_only_when_power_is_absent() -> None:
    samples = [sv16("16", "Current.Import", unit="A", phase=p) for p in ("L1", "L2", "L3")]
    samples += [sv16("230", "Voltage", unit="V", phase=f"{p}-N") for p in ("L1", "L2", "L3")]
    [r] = readings(WHERE, [{"timestamp": TS, "sampled_value": samples}], "1.6")
    assert r["power_kw"] == pytest.approx(3 * 16 * 230 / 1000)
    assert r["current_a"] == 16
    [single] = readings(WHERE, [{"timestamp": TS, "sampled_value": [
        sv16("10", "Current.Import"), sv16("230", "Voltage")]}], "1.6", default_phases=1)
    assert single["power_kw"] == pytest.approx(2.3)
    [with_power] = readings(WHERE, [{"timestamp": TS, "sampled_value": [
        *samples, sv16("5000", "Power.Active.Import")]}], "1.6")
    assert with_power["power_kw"] == 5.0


def test_201_numbers_with_a_multiplier() -> None:
    [r] = readings(WHERE, [{"timestamp": TS, "sampled_value": [
        {"value": 22, "measurand": "Power.Active.Import",
         "unit_of_measure": {"unit": "W", "multiplier": 3}},
        {"value": 4.5, "unit_of_measure": {"unit": "kWh"}},  # default measurand: energy
    ]}], "2.0.1")
    assert (r["power_kw"], r["energy_kwh"]) == (22.0, 4.5)


def test_energy_only_samples_yield_no_reading_and_garbage_is_an_error() -> None:
    assert readings(WHERE, [{"timestamp": TS, "sampled_value": [sv16("100")]}], "1.6") == []
    with pytest.raises(SampleError):
        readings(WHERE, [{"timestamp": TS, "sampled_value": [
            sv16("lots", "Power.Active.Import")]}], "1.6")


def test_inlet_meters_do_not_count_as_the_connectors_draw() -> None:
    assert readings(WHERE, [{"timestamp": TS, "sampled_value": [
        sv16("9000", "Power.Active.Import", location="Inlet")]}], "1.6") == []
