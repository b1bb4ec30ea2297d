"""The demo's frequency event: an FCR-D-like program on every zone, the dip, and what the live
view and the closing report show of it (required against delivered, the timing verdict)."""

from __future__ import annotations

import argparse
import textwrap

from rich.table import Table

from evgrid.simulator.frequency import DIP, FrequencyPlan, ProgramSpec

#: The demo's frequency programs: FCR-D-like (linear 49.90 → 49.50 Hz, 50 % within 5 s,
#: 100 % within 30 s), each zone committing 30 % of its load, released over a minute.
DEMO_PROGRAM = ("committed_pct=30,product=linear,start_hz=49.9,full_hz=49.5,"
                "half_activation_s=5,full_activation_s=30,recovery_s=5,restore_spread_s=60")
#: The demo's frequency area.
DEMO_AREA = "A1"


def frequency_plan(args: argparse.Namespace) -> FrequencyPlan | None:
    if args.no_frequency:
        return None
    return FrequencyPlan(DIP, area_id=DEMO_AREA, rate_hz=10.0, at_s=args.frequency_at,
                         program=ProgramSpec.parse(DEMO_PROGRAM))


def _kw(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def freq_phase(zone: dict) -> str | None:
    return (zone.get("frequency") or {}).get("phase")


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def freq_verdict(a: dict, short: bool = False) -> str:
    """How an activation's timing went (a record, or a snapshot while it runs); `short` for
    the live view's narrow column."""
    if a.get("timing_met"):
        return "met" if short else "timing met"
    missed = [f"{pct} % {'late' if t is not None else ('—' if short else 'not reached')}"
              for pct, t, met in (("50", a.get("time_to_50_s"), a.get("half_met")),
                                  ("100", a.get("time_to_100_s"), a.get("full_met")))
              if met is False]
    if missed:
        return ", ".join(missed) if short else "missed: " + ", ".join(missed)
    return "in time" if short else "in time so far"


def frequency_table(zones: dict[str, dict], activations: list[dict],
                    zone_ids: list[str]) -> Table:
    """The live view's frequency rows: what is required of each zone now against the
    reduction its meters show, and the timing; once an activation ended, its record (the
    peak required and the most delivered)."""
    last = {a["zone_id"]: a for a in activations}
    hz = next((f["last_hz"] for z in zone_ids
               if (f := zones.get(z, {}).get("frequency")) and f.get("last_hz")), None)
    t = Table(title="frequency " + ("—" if hz is None else f"{hz:.3f} Hz") + "   program "
              "49.90 → 49.50 Hz, 50 % ≤ 5 s, 100 % ≤ 30 s")
    for col in ("zone", "phase", "required kW", "metered kW", "50 %", "100 %", "timing"):
        t.add_column(col, justify="right")
    for z in zone_ids:
        f = zones.get(z, {}).get("frequency") or {}
        evidence = f.get("evidence")
        if evidence is not None:
            samples = evidence.get("samples") or []
            delivered = samples[-1][2] if samples else None
            row = (f.get("phase", "—"), _kw(f.get("required_kw")), _kw(delivered),
                   _s(evidence.get("time_to_50_s")), _s(evidence.get("time_to_100_s")),
                   freq_verdict(evidence, short=True))
        elif z in last:
            a = last[z]
            row = ("ended", _kw(a["peak_required_kw"]), _kw(a["delivered_kw"]),
                   _s(a["time_to_50_s"]), _s(a["time_to_100_s"]), freq_verdict(a, short=True))
        else:
            row = (f.get("phase", "—"), "—", "—", "—", "—", "—")
        t.add_row(z, *row)
    return t


def activation_block(a: dict) -> list[str]:
    """One frequency activation of the closing report, at most 80 columns a line."""
    nadir = "" if a["nadir_hz"] is None else f", nadir {a['nadir_hz']:.3f} Hz"
    lines = [
        f"{a['zone_id']}  {a['activation_id']}: {freq_verdict(a)}",
        f"    required {_kw(a['peak_required_kw'])} kW at the peak, delivered "
        f"{_kw(a['delivered_kw'])} kW (baseline {_kw(a['baseline_kw'])} kW)",
        f"    50 % in {_s(a['time_to_50_s'])} (≤ {a['half_activation_s']:g} s), "
        f"100 % in {_s(a['time_to_100_s'])} (≤ {a['full_activation_s']:g} s)",
        f"    ended by {a['ended_by'].lower()}{nadir}; meter data every "
        f"{_s(a['meter_resolution_s'])}",
    ]
    return lines


def timing_hint(activations: list[dict], charger_lag_s: float) -> list[str]:
    """Why a demo activation reached its 50 % mark late, when one did: the simulated
    chargers' share of the budget, and how to play a fleet fast enough (at most 80 columns
    a line)."""
    late = [a for a in activations
            if a.get("half_met") is False and a.get("time_to_50_s") is not None]
    if not late:
        return []
    mark = min(a["half_activation_s"] for a in late)
    return textwrap.wrap(
        f"The simulated chargers take {charger_lag_s:g} s to obey a command (--lag): a "
        f"{mark:g} s mark needs a fleet that follows within about {max(mark - 2, 1):g} s. "
        "make demo DEMO_ARGS=\"--lag 2\" plays one that does.", width=80)
