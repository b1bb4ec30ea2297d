"""`make demo`'s closing report: one block per event, every line within 80 columns, so it reads
the same in a narrow terminal and when piped."""

from __future__ import annotations

from rich.console import Console

from evgrid.demo import EventTrack, report_lines, verdict
from evgrid.demo_frequency import freq_verdict, frequency_table
from evgrid.simulator.runner import DRSpec, SimStats


def report(pct: float | None, ignored: int, time_to_cap_s: float | None = 12.3) -> dict:
    return {
        "zone_id": "Z1", "signal_id": "SIM-1764876000-1", "baseline_kw": 812.345,
        "cap_kw": 609.26, "baseline_energy_kwh": 16.9, "drawn_energy_kwh": 13.2,
        "delivered_kwh": 3.7, "delivered_pct_of_target": pct, "time_to_cap_s": time_to_cap_s,
        "stations": [{"station_id": f"ST-{i:05d}", "seconds_noncompliant": 10.0 if i < ignored
                      else 0.0} for i in range(40)],
    }


def test_every_line_fits_80_columns_and_names_what_happened() -> None:
    done = EventTrack(DRSpec.parse("zone=Z1,at=+20s,reduce=25%,for=75s"))
    done.report = report(87.4, ignored=25)
    running = EventTrack(DRSpec.parse("zone=Z3,at=+30s,reduce=15%,for=75s"))
    stats = SimStats(readings=24_000, commands=130, commands_by_action={"SET": 100, "CLEAR": 30})
    outcomes = {s: 3 for s in ("Accepted", "Rejected", "NotSupported", "CallError", "Timeout",
                               "Offline", "Expired", "Superseded")}
    lines = report_lines([done, running], stats, outcomes)
    assert max(len(line) for line in lines) <= 80, [ln for ln in lines if len(ln) > 80]
    text = "\n".join(lines)
    assert "Z1  SIM-1764876000-1: short: 25 station(s) ignored their commands" in text
    assert "baseline 812.3 kW, cap 609.3 kW, reached in 12.3 s" in text
    assert "delivered 3.70 kWh = 87.4 % of target" in text
    assert "ST-00024" in text and "ST-00025" not in text
    assert "Z3  " in text and "no report yet" in text
    assert "Superseded 3" in text
    assert "readings published: 24000" in text


def test_verdicts() -> None:
    assert verdict(report(97.0, ignored=2)) == "target met (≥ 95 %)"
    assert verdict(report(80.0, ignored=0)).startswith("cap reached")
    assert verdict(report(80.0, ignored=0, time_to_cap_s=None)) == "target not met"
    assert verdict(report(None, ignored=0)) == "nothing to deliver"


def activation(**overrides: object) -> dict:
    record = {
        "activation_id": "Z1:1764876105.123", "zone_id": "Z1", "area_id": "A1",
        "product": "linear", "committed_kw": 243.6, "baseline_kw": 812.345,
        "start_ts": "2026-12-04T19:21:45.123Z", "end_ts": "2026-12-04T19:24:40.000Z",
        "nadir_hz": 49.6, "nadir_ts": "2026-12-04T19:21:48.100Z",
        "peak_required_kw": 182.7, "delivered_kw": 176.04, "time_to_50_s": 4.2,
        "time_to_100_s": 7.9, "half_activation_s": 5.0, "full_activation_s": 30.0,
        "half_met": True, "full_met": True, "timing_met": True, "meter_resolution_s": 2.0,
        "max_reading_age_s": 2.4, "ended_by": "RECOVERED", "sample_count": 170, "samples": [],
    }
    return {**record, **overrides}


def test_frequency_activations_fit_80_columns_with_required_delivered_and_verdict() -> None:
    stats = SimStats(readings=10, commands=2)
    late = activation(zone_id="Z3", activation_id="Z3:1764876105.456", time_to_50_s=6.3,
                      half_met=False, timing_met=False)
    never = activation(zone_id="Z4", activation_id="Z4:1764876105.789", time_to_100_s=None,
                       full_met=False, timing_met=False, ended_by="SILENCE", nadir_hz=None)
    lines = report_lines([], stats, None, [activation(), late, never])
    assert max(len(line) for line in lines) <= 80, [ln for ln in lines if len(ln) > 80]
    text = "\n".join(lines)
    assert "Frequency activations (grid.frequency_activations):" in text
    assert "Z1  Z1:1764876105.123: timing met" in text
    assert "required 182.7 kW at the peak, delivered 176.0 kW (baseline 812.3 kW)" in text
    assert "50 % in 4.2 s (≤ 5 s), 100 % in 7.9 s (≤ 30 s)" in text
    assert "ended by recovered, nadir 49.600 Hz; meter data every 2.0 s" in text
    assert "Z3  Z3:1764876105.456: missed: 50 % late" in text
    assert "Z4  Z4:1764876105.789: missed: 100 % not reached" in text
    assert "ended by silence; meter data" in text
    assert "--lag" not in text  # no chargers' lag given: no hint
    hinted = report_lines([], stats, None, [activation(), late], charger_lag_s=4.0)
    assert max(len(line) for line in hinted) <= 80
    assert "take 4 s to obey a command (--lag): a 5 s mark needs a fleet that follows " \
        "within about 3 s" in " ".join(hinted)
    assert 'DEMO_ARGS="--lag 2"' in " ".join(hinted)
    met = report_lines([], stats, None, [activation(), never], charger_lag_s=4.0)
    assert "--lag" not in "\n".join(met)  # no 50 % mark late: nothing the lag explains
    assert "no activation ended" in "\n".join(report_lines([], stats, None, []))
    assert "Frequency" not in "\n".join(report_lines([], stats))


def test_frequency_verdict_while_running() -> None:
    running = {"time_to_50_s": 3.0, "time_to_100_s": None, "half_met": True,
               "full_met": None, "timing_met": None}
    assert freq_verdict(running) == "in time so far"
    assert freq_verdict({**running, "full_met": False}) == "missed: 100 % not reached"


def test_the_live_frequency_table_fits_80_columns() -> None:
    running = {"phase": "ACTIVE", "required_kw": 376.5, "last_hz": 49.815,
               "evidence": {"samples": [[1.0, 376.5, 350.25]], "time_to_50_s": 6.1,
                            "time_to_100_s": None, "half_met": False, "full_met": None,
                            "timing_met": None}}
    zones = {"Z1": {"frequency": running}, "Z2": {"frequency": {"phase": "IDLE"}}}
    table = frequency_table(zones, [activation(zone_id="Z3")], ["Z1", "Z2", "Z3", "Z4"])
    console = Console(width=80, record=True)
    console.print(table)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split("│")[1].strip(): line for line in lines if line.startswith("│")}
    assert set(rows) == {"Z1", "Z2", "Z3", "Z4"}  # one line per zone: nothing wraps
    assert "49.815 Hz" in lines[0]
    assert all(s in rows["Z1"] for s in ("ACTIVE", "376.5", "350.2", "6.1 s", "50 % late"))
    assert all(s in rows["Z3"] for s in ("ended", "182.7", "176.0", "4.2 s", "7.9 s", "met"))
    assert "IDLE" in rows["Z2"] and "—" in rows["Z4"]
