"""`evgrid demo` (`make demo`): a local broker, a worker and a simulated fleet, one DR event
per chosen zone, a live terminal view, and a summary — then everything is stopped.

What a newcomer runs first, so it must be self-contained: it starts its own broker unless
EVGRID_BROKER is set, uses its own topic names and data directory, and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from evgrid import codec
from evgrid.broker.local import LocalKafka, free_port
from evgrid.demo_frequency import (
    activation_block,
    freq_phase,
    frequency_plan,
    frequency_table,
    timing_hint,
)
from evgrid.process import WorkerProcess
from evgrid.settings import GatewaySettings, WorkerSettings
from evgrid.simulator.fleet import Fleet
from evgrid.simulator.frequency import run_frequency
from evgrid.simulator.runner import DRSpec, SimStats, run_simulation

# The terminal's width, or 80 columns when the output is piped: everything printed fits 80.
console = Console()


@dataclass
class EventTrack:
    """What the demo saw of one DR event: its status live, its report when it ended."""

    spec: DRSpec
    status: dict = field(default_factory=dict)
    state: str = "pending"
    noncompliant: set[str] = field(default_factory=set)
    report: dict | None = None  # the event's settlement report (grid.dr_reports)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="broker + worker + simulated fleet + DR and "
                              "frequency events", **WorkerSettings.help_args())
    p.add_argument("--duration", type=float, default=225.0, help="seconds of fleet time (225)")
    p.add_argument("--stations", type=int, default=200)
    p.add_argument("--zones", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--interval", type=float, default=2.0, help="meter interval, seconds")
    p.add_argument("--ignore-fraction", type=float, default=0.03,
                   help="share of stations that ignore commands")
    p.add_argument("--lag", type=float, default=4.0, help="seconds a charger takes to obey")
    p.add_argument("--dr", action="append", default=None,
                   help="DR event(s), e.g. zone=Z1,at=+20s,reduce=25%%,for=5m")
    p.add_argument("--site-size", type=int, default=10,
                   help="group each zone's stations into depots of this many, each behind a "
                   "limit a busy depot exceeds (10; 0: no sites)")
    p.add_argument("--ocpp", action="store_true",
                   help="run `evgrid gateway` too and play the fleet as OCPP chargers")
    p.add_argument("--openadr", action="store_true",
                   help="Z1's event comes from an in-process OpenADR VTN through `evgrid "
                   "openadr` (SIMPLE level 2); the utility's reports are printed")
    p.add_argument("--frequency-at", type=float, default=100.0,
                   help="seconds into the run of the frequency dip (49.6 Hz over 4 s, back "
                   "over a minute) on every zone's FCR-D-like program (100)")
    p.add_argument("--no-frequency", action="store_true", help="no frequency event")
    p.set_defaults(func=run)


def dr_span(args: argparse.Namespace) -> int:
    """Default DR events end before the frequency dip, or before the demo does (so their
    CLEARs show too)."""
    end = args.duration if args.no_frequency else min(args.duration, args.frequency_at + 5)
    return max(20, int(end) - 45)


def run(args: argparse.Namespace) -> int:
    span = dr_span(args)
    specs = [DRSpec.parse(s) for s in (args.dr or [
        f"zone=Z1,at=+20s,reduce=25%,for={span}s",
        f"zone=Z3,at=+30s,reduce=15%,for={span}s",
    ])]
    if args.openadr:  # Z1's event is the utility's: tracked here, sent by the VTN
        specs = [s for s in specs if s.zone_id != "Z1"] + [DRSpec(
            zone_id="Z1", at_s=20, for_s=span, reduce_pct=50, sent=True, signal_id="oadr:demo-1")]
    workdir = Path(tempfile.mkdtemp(prefix="evgrid-demo-"))
    broker: LocalKafka | None = None
    worker: WorkerProcess | None = None
    gateway = None
    sql = None
    try:
        bootstrap = os.environ.get("EVGRID_BROKER")
        if not bootstrap:
            console.print("[bold]1/3[/] starting a local Apache Kafka (KRaft) ...")
            t0 = time.monotonic()
            broker = LocalKafka(data_dir=workdir / "kafka", port=0).start()
            bootstrap = broker.bootstrap
            console.print(f"     Kafka at {bootstrap} after {time.monotonic() - t0:.1f}s")
        run_id = uuid.uuid4().hex[:6]
        settings = WorkerSettings.from_env(
            broker=bootstrap, app_id=f"evgrid-demo-{run_id}", data_dir=workdir / "worker",
            web_port=free_port(), partitions=4, compliance_grace_s=15.0, log_level="warning",
        ).with_topic_prefix(f"demo-{run_id}")
        gateway_settings = settings.derive(GatewaySettings, gateway_port=free_port())
        ocpp_url = f"ws://127.0.0.1:{gateway_settings.gateway_port}"
        console.print("[bold]2/3[/] starting an evgrid worker ...")
        worker = WorkerProcess(settings, workdir / "worker.log").start()
        try:
            asyncio.run(worker.wait_ready(timeout=90))
        except AssertionError as exc:
            raise SystemExit(f"evgrid: the worker did not come up: {exc}") from None
        url = worker.url
        console.print(f"     worker up: {url}/ (the dashboard; also /zones, /metrics)")
        from evgrid.sql.demo import start_sql

        sql = start_sql(settings, workdir, console.print)
        if args.ocpp:
            from evgrid.gateway.process import GatewayProcess

            gateway = GatewayProcess(gateway_settings, workdir / "gateway.log")
            asyncio.run(gateway.start())
            console.print(f"     gateway up: {ocpp_url}/{{id}}")
        console.print(
            f"[bold]3/3[/] simulating {args.stations} stations in {args.zones} zones for "
            f"{args.duration:.0f}s\n     DR: " + "; ".join(
                f"{s.zone_id} -{s.reduce_pct or s.reduce_kw}{'%' if s.reduce_pct else ' kW'} "
                f"at +{s.at_s:.0f}s" for s in specs)
            + ("" if args.no_frequency else
               f"\n     frequency: a dip to 49.6 Hz at +{args.frequency_at:.0f}s; every zone "
               "FCR-D-like, 30 % of its load")
        )
        fleet = Fleet(args.stations, args.zones, seed=args.seed,
                      ignore_fraction=args.ignore_fraction, command_lag_s=args.lag,
                      site_size=args.site_size)
        tracks, stats, outcomes, activations = asyncio.run(
            simulate(settings, fleet, specs, args, url, ocpp_url)
        )
        summary(tracks, stats, settings, outcomes, activations, args.lag)
        sql.summary()
        return 0
    finally:
        if sql is not None:
            sql.stop()
        if gateway is not None:
            gateway.stop()
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        console.print(f"stopped the {'gateway, the ' if gateway else ''}worker and the broker; "
                      "nothing left running")


async def simulate(
    settings: WorkerSettings, fleet: Fleet, specs: list[DRSpec], args: argparse.Namespace, url: str,
    ocpp_url: str,
) -> tuple[list[EventTrack], SimStats, dict[str, int], list[dict]]:
    tracks = {s.zone_id: EventTrack(s) for s in specs}
    zones: dict[str, dict] = {}
    outcomes: dict[str, int] = {}
    activations: list[dict] = []  # grid.frequency_activations, as they end
    plan = frequency_plan(args)
    consumer = AIOKafkaConsumer(
        settings.topics.dr_status, settings.topics.compliance_alerts, settings.topics.outcomes,
        settings.topics.dr_reports, settings.topics.frequency_activations,
        bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest",
        **settings.kafka_client_kwargs(),
    )
    await consumer.start()
    stats_box: dict[str, SimStats] = {}
    started = time.monotonic()

    async def follow() -> None:
        async for m in consumer:
            msg = codec.loads(m.value)
            if m.topic == settings.topics.outcomes:
                outcomes[msg["status"]] = outcomes.get(msg["status"], 0) + 1
                continue
            if m.topic == settings.topics.frequency_activations:
                activations.append(msg)
                continue
            track = tracks.get(msg.get("zone_id", ""))
            if track is None:
                continue
            if m.topic == settings.topics.dr_reports:
                track.report = msg
                continue
            if m.topic == settings.topics.compliance_alerts:
                (track.noncompliant.add if msg["state"] == "NONCOMPLIANT"
                 else track.noncompliant.discard)(msg["station_id"])
                continue
            track.status = msg
            track.state = msg["state"]

    engaged: set[str] = set()  # zones whose frequency response was ever engaged

    async def poll() -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                for z in fleet.zone_ids:
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with http.get(f"{url}/zones/{z}") as r:
                            if r.status == 200:
                                zones[z] = await r.json()
                                if freq_phase(zones[z]) not in ("IDLE", None):
                                    engaged.add(z)
                await asyncio.sleep(1.0)

    def render() -> Table | Group:
        elapsed = time.monotonic() - started
        stats = stats_box.get("s")
        t = Table(title=f"evgrid demo — {elapsed:5.0f}s / {args.duration:.0f}s   "
                        f"readings {stats.readings if stats else 0}   "
                        f"commands {stats.commands if stats else 0}")
        columns = ["zone", "load kW", "cap kW", "capacity kW", "stations", "DR",
                   "non-compliant"] + (["sites limited"] if fleet.sites else [])
        for col in columns:
            t.add_column(col, justify="right")
        for z in fleet.zone_ids:
            info = zones.get(z, {})
            dr = info.get("dr", {})
            track = tracks.get(z)
            cap = dr.get("cap_kw")
            sites = [f"{len(dr.get('sites_limited', []))}/{len(info.get('sites', []))}"]
            t.add_row(
                z, f"{info.get('zone_total_power_kw', 0):.0f}",
                "—" if cap is None else f"{cap:.0f}",
                f"{info.get('zone_capacity_kw', 0):.0f}",
                str(info.get("stations", 0)),
                (track.state if track else "—"),
                str(len(track.noncompliant)) if track else "—",
                *(sites if fleet.sites else []),
            )
        if plan is None:
            return t
        return Group(t, frequency_table(zones, activations, fleet.zone_ids))

    def on_tick(_elapsed: float, _fleet: Fleet, stats: SimStats) -> None:
        stats_box["s"] = stats

    tasks = [asyncio.create_task(follow()), asyncio.create_task(poll())]
    try:
        with Live(render(), console=console, refresh_per_second=2, transient=False) as live:
            async def refresh() -> None:
                while True:
                    live.update(render())
                    await asyncio.sleep(0.5)

            tasks.append(asyncio.create_task(refresh()))
            source = None if plan is None else asyncio.create_task(run_frequency(
                settings, fleet, plan, args.duration, time.time()))
            if source is not None:
                tasks.append(source)
            async with utility(settings, args, span=dr_span(args)):
                if args.ocpp:
                    from evgrid.simulator.ocpp_runner import run_ocpp_simulation

                    stats = await run_ocpp_simulation(
                        settings, fleet, ocpp_url,
                        duration_s=args.duration, interval_s=args.interval, dr=specs,
                        on_tick=on_tick, away_s=15.0, seed=args.seed)
                else:
                    stats = await run_simulation(
                        settings, fleet, duration_s=args.duration, interval_s=args.interval,
                        dr=specs, on_tick=on_tick,
                    )
            if source is not None:
                await source
                # The activations end with the last release: the records follow shortly.
                await wait_for(lambda: engaged <= {a["zone_id"] for a in activations}, 15.0)
            live.update(render())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await consumer.stop()
    return list(tracks.values()), stats, outcomes, activations


async def wait_for(done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


def utility(settings: WorkerSettings, args: argparse.Namespace,
            span: float) -> contextlib.AbstractAsyncContextManager[None]:
    """With --openadr, an OpenADR VTN and `evgrid openadr` beside the fleet."""
    if not args.openadr:
        return contextlib.nullcontext()
    from evgrid.openadr.demo_vtn import utility_and_ven

    return utility_and_ven(settings, "Z1", at_s=18.0, for_s=span, say=console.print)


def _kw(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def verdict(report: dict) -> str:
    """One phrase for how an event went, from its settlement report."""
    pct = report["delivered_pct_of_target"]
    ignored = sum(1 for s in report["stations"] if s["seconds_noncompliant"] > 0)
    if pct is None:
        return "nothing to deliver"
    if pct >= 95.0:
        return "target met (≥ 95 %)"
    if ignored:
        return f"short: {ignored} station(s) ignored their commands"
    if report["time_to_cap_s"] is not None:
        return "cap reached; the chargers' ramp down to it cost the rest"
    return "target not met"


def event_block(track: EventTrack) -> list[str]:
    """One event of the closing report, a few lines of at most 80 columns each."""
    r = track.report
    if r is None:
        signal = track.status.get("signal_id") or track.spec.signal_id or "its event"
        return [f"{track.spec.zone_id}  {signal}: no report yet (the event had not ended)"]
    pct = r["delivered_pct_of_target"]
    to_cap = r["time_to_cap_s"]
    lines = [
        f"{r['zone_id']}  {r['signal_id']}: {verdict(r)}",
        f"    baseline {_kw(r['baseline_kw'])} kW, cap {_kw(r['cap_kw'])} kW, "
        + ("cap not reached" if to_cap is None else f"reached in {to_cap:.1f} s"),
        f"    energy {_kw(r['baseline_energy_kwh'], 2)} kWh at baseline, "
        f"{_kw(r['drawn_energy_kwh'], 2)} kWh drawn",
        f"    delivered {_kw(r['delivered_kwh'], 2)} kWh"
        + ("" if pct is None else f" = {pct:.1f} % of target"),
    ]
    ignored = sorted(s["station_id"] for s in r["stations"] if s["seconds_noncompliant"] > 0)
    if ignored:
        lines += textwrap.wrap("non-compliant: " + ", ".join(ignored), width=80,
                               initial_indent="    ", subsequent_indent="      ")
    return lines


def report_lines(tracks: list[EventTrack], stats: SimStats,
                 outcomes: dict[str, int] | None = None,
                 activations: list[dict] | None = None,
                 charger_lag_s: float | None = None) -> list[str]:
    """The closing report: one block per DR event, one per frequency activation (and why a
    timing was missed, when the chargers' `charger_lag_s` is given), then the fleet's
    counts; 80 columns."""
    lines = ["DR events, from their settlement reports (grid.dr_reports):", ""]
    for track in tracks:
        lines += [*event_block(track), ""]
    if activations is not None:
        lines += ["Frequency activations (grid.frequency_activations):", ""]
        for a in sorted(activations, key=lambda a: (a["zone_id"], a["start_ts"])):
            lines += [*activation_block(a), ""]
        if not activations:
            lines += ["no activation ended while the demo ran", ""]
        elif charger_lag_s is not None and (hint := timing_hint(activations, charger_lag_s)):
            lines += [*hint, ""]
    lines.append(f"readings published: {stats.readings}")
    by_action = ", ".join(f"{a} {n}" for a, n in sorted(stats.commands_by_action.items()))
    lines.append(f"commands the fleet obeyed or saw: {stats.commands}"
                 + (f" ({by_action})" if by_action else ""))
    if outcomes:
        lines += textwrap.wrap("command outcomes from the gateway: " + ", ".join(
            f"{status} {n}" for status, n in sorted(outcomes.items())), width=80,
            subsequent_indent="    ")
    return lines


def summary(tracks: list[EventTrack], stats: SimStats, settings: WorkerSettings,
            outcomes: dict[str, int] | None = None,
            activations: list[dict] | None = None,
            charger_lag_s: float | None = None) -> None:
    console.print()
    for line in report_lines(tracks, stats, outcomes, activations, charger_lag_s):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
