"""`evgrid simulate`: run the simulated fleet against EVGRID_BROKER until stopped."""

from __future__ import annotations

import argparse
import asyncio
import time

from evgrid.logs import install_broker_log
from evgrid.settings import KafkaSettings
from evgrid.simulator.fleet import Fleet
from evgrid.simulator.frequency import (
    DIP,
    FrequencyPlan,
    ProgramSpec,
    parse_trace,
    run_frequency,
)
from evgrid.simulator.runner import DRSpec, SimStats, parse_duration, run_simulation
from evgrid.topics import ensure_topics


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="a seeded fleet of stations against EVGRID_BROKER",
                              **KafkaSettings.help_args())
    p.add_argument("--stations", type=int, default=200)
    p.add_argument("--zones", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--interval", type=float, default=10.0, help="meter interval, seconds")
    p.add_argument("--accel", type=float, default=1.0, help="fleet time per wall second")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds to run")
    p.add_argument("--ignore-fraction", type=float, default=0.05)
    p.add_argument("--lag", type=float, default=10.0, help="seconds a charger takes to obey")
    p.add_argument("--arrivals", type=float, default=1.5, help="sessions per connector-hour")
    p.add_argument("--site-size", type=int, default=0,
                   help="group each zone's stations into sites (depots) of this many, each "
                   "behind a limit a busy depot exceeds (0: no sites)")
    p.add_argument("--dr", action="append", default=[],
                   help="inject a DR event: zone=Z1,at=+30s,reduce=25%%,for=5m")
    p.add_argument("--ocpp", metavar="URL", default=None,
                   help="play the stations as OCPP chargers against `evgrid gateway` at URL "
                   "(ws://127.0.0.1:9000): meter values and commands over OCPP")
    p.add_argument("--reject-fraction", type=float, default=0.05,
                   help="with --ocpp: share of chargers that reject every profile")
    p.add_argument("--drop-fraction", type=float, default=0.05,
                   help="with --ocpp: share of chargers that drop their connection once")
    f = p.add_argument_group("frequency (docs/frequency.md, Simulator)")
    f.add_argument("--frequency-trace", metavar="FILE", default=None,
                   help="play this CSV (t_s,frequency_hz) on grid.frequency, interpolated")
    f.add_argument("--frequency-dip", action="store_true",
                   help="play the demo's trace: 49.6 Hz over 4 s, back to 50 Hz over a minute")
    f.add_argument("--frequency-at", type=parse_duration, default=0.0, metavar="+30s",
                   help="the trace starts this long into the run (0; before it: its first "
                   "value, after it: its last, so the source never falls silent)")
    f.add_argument("--frequency-rate", type=float, default=10.0,
                   help="measurements per second (10)")
    f.add_argument("--area", default="A1", help="the trace's and the programs' area (A1)")
    f.add_argument("--frequency-program", metavar="SPEC", default=None,
                   help="publish this program for every zone, e.g. committed_pct=30,"
                   "product=linear,start_hz=49.9,full_hz=49.5,restore_spread_s=60")
    p.set_defaults(func=run)


def frequency_plan(args: argparse.Namespace) -> FrequencyPlan | None:
    """The frequency source and programs the arguments ask for (ValueError when bad)."""
    if args.frequency_trace and args.frequency_dip:
        raise ValueError("--frequency-trace and --frequency-dip: choose one")
    if args.frequency_rate <= 0:
        raise ValueError("--frequency-rate must be > 0")
    program = (ProgramSpec.parse(args.frequency_program) if args.frequency_program
               else None)
    if args.frequency_trace:
        with open(args.frequency_trace, encoding="utf-8") as fh:
            trace = parse_trace(fh.read())
    elif args.frequency_dip:
        trace = DIP
    elif program is not None:
        trace = [(0.0, 50.0)]  # programs need a live source, or they disarm on silence
    else:
        return None
    return FrequencyPlan(trace, area_id=args.area, rate_hz=args.frequency_rate,
                         at_s=args.frequency_at, program=program)


def run(args: argparse.Namespace) -> int:
    try:
        specs = [DRSpec.parse(s) for s in args.dr]
        plan = frequency_plan(args)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"evgrid: {exc}") from None
    settings = KafkaSettings.from_env()
    install_broker_log(settings.bootstrap_servers)
    fleet = Fleet(args.stations, args.zones, seed=args.seed, arrivals_per_hour=args.arrivals,
                  ignore_fraction=args.ignore_fraction, command_lag_s=args.lag,
                  site_size=args.site_size)

    def progress(elapsed: float, fl: Fleet, stats: SimStats) -> None:
        if int(elapsed) % 30 < args.interval:
            loads = ", ".join(f"{z} {fl.zone_load_kw(z):.0f} kW" for z in fl.zone_ids)
            over = sum(1 for site_id, site in fl.sites.items()
                       if fl.site_load_kw(site_id) > site["max_kw"])
            sites = f"; sites over their limit {over}/{len(fl.sites)}" if fl.sites else ""
            print(f"[{elapsed:6.0f}s] readings {stats.readings}, commands {stats.commands}; "
                  f"{loads}{sites}", flush=True)

    async def main() -> SimStats:
        await ensure_topics(settings)
        if plan is None:
            return await simulation()
        source = asyncio.create_task(run_frequency(settings, fleet, plan, args.duration,
                                                   time.time()))
        try:
            stats = await simulation()
        except BaseException:
            source.cancel()
            raise
        sent = await source
        print(f"frequency: {sent} measurements for area {plan.area_id}", flush=True)
        return stats

    async def simulation() -> SimStats:
        if args.ocpp:
            from evgrid.simulator.ocpp_runner import run_ocpp_simulation

            return await run_ocpp_simulation(
                settings, fleet, args.ocpp.rstrip("/"), duration_s=args.duration,
                interval_s=args.interval, accel=args.accel, dr=specs,
                reject_fraction=args.reject_fraction, drop_fraction=args.drop_fraction,
                seed=args.seed, on_tick=progress)
        return await run_simulation(settings, fleet, duration_s=args.duration,
                                    interval_s=args.interval, accel=args.accel, dr=specs,
                                    on_tick=progress)

    stats = asyncio.run(main())
    print(f"done: {stats.readings} readings, {stats.commands} commands obeyed", flush=True)
    return 0
