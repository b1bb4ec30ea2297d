"""`make demo`'s closing report: one block per event, every line within 80 columns, so it reads
the same in a narrow terminal and when piped."""

from __future__ import annotations

from evgrid.demo import EventTrack, report_lines, verdict
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
