"""`evgrid bench` / `make bench`: each phase (a module named for what it measures) runs
against a fresh local broker — or `EVGRID_BROKER` with the worker's own security settings —
and reports figures, never a verdict: speed depends on the machine and what else runs on it.

Every figure is printed as it is measured and again in a table at the end; the run is saved
as `bench/results/<time>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from evgrid.bench import (
    flood,
    frequency,
    gateway,
    latency,
    memory,
    recovery,
    scaling,
    sql,
    throughput,
)
from evgrid.bench.harness import SMOKE, Bench, Phase, Sizes, say
from evgrid.broker.local import LocalKafka
from evgrid.settings import WorkerSettings

#: The phases, in the order they run (throughput first: the saturated DR latency offers twice
#: the rate it measured). A new phase is a module with a `PHASE` and a line here.
PHASES: dict[str, Phase] = {phase.name: phase for phase in (
    throughput.PHASE, latency.PHASE, flood.PHASE, memory.PHASE, recovery.PHASE,
    scaling.PHASE, gateway.PHASE, sql.PHASE, frequency.PHASE,
)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def run_phases(base: WorkerSettings, sizes: Sizes, workdir: Path, names: list[str],
                     parallel: bool = False) -> dict[str, Any]:
    """One phase after the other — or, for the smoke test, all at once (each has its own
    topics and workers; the figures then mean nothing, the code paths are the same)."""
    bench = Bench(base, sizes, workdir)
    bench.results.update(load_average_start=load_average(), phases=names, phase_seconds={},
                         parallel=parallel)

    async def one(i: int, name: str) -> None:
        phase = PHASES[name]
        say(f"[{i}/{len(names)}] {name}: {phase.about}")
        started = time.monotonic()
        bench.results[name] = await phase.run(bench)
        bench.results["phase_seconds"][name] = round(time.monotonic() - started, 1)

    try:
        if parallel:
            await asyncio.gather(*(one(i, name) for i, name in enumerate(names, 1)))
        else:
            for i, name in enumerate(names, 1):
                await one(i, name)
                bench.end_phase()
    finally:
        bench.reap()
    bench.results["load_average_end"] = load_average()
    return bench.results


def report(results: dict[str, Any]) -> str:
    """The markdown report: one table, a section per phase that ran."""
    lines = [
        f"evgrid bench, {results['started']}: {results['cores']} cores, load average "
        f"{' / '.join(map(str, results['load_average_start']))} at the start, "
        f"{' / '.join(map(str, results['load_average_end']))} at the end; "
        f"{results['elapsed_s']:.0f} s{' (smoke sizes)' if results['smoke'] else ''}"
        f"{', phases run at once' if results['parallel'] else ''}.",
        "",
        "| phase | measure | figure |",
        "| --- | --- | --- |",
    ]
    for name in results["phases"]:
        if name in results:
            lines += [f"| {name} | {measure} | {figure} |"
                      for measure, figure in PHASES[name].rows(results[name])]
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmarks against a fresh local broker",
                              **WorkerSettings.help_args())
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes: every phase's code runs in seconds (figures meaningless)")
    p.add_argument("--messages", type=int, default=None,
                   help="readings in the throughput backlog (default 1,000,000)")
    p.add_argument("--size", action="append", default=[], metavar="NAME=VALUE",
                   help="override one size, e.g. memory_connectors=100000,400000 or "
                        f"recovery_rate=5000 (names: {', '.join(Sizes.__dataclass_fields__)})")
    p.add_argument("--parallel", action="store_true",
                   help="run the phases at once (with --smoke, to check the code quickly)")
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of: {', '.join(PHASES)}")
    p.set_defaults(func=run)


def selected(arg: str) -> list[str]:
    """The phases asked for, in registry order; an unknown name is an error that lists them."""
    wanted = {name.strip() for name in arg.split(",") if name.strip()}
    unknown = wanted - PHASES.keys()
    if unknown or not wanted:
        raise SystemExit(f"evgrid: unknown bench phase(s) {sorted(unknown)}; choose from "
                         f"{', '.join(PHASES)}")
    return [name for name in PHASES if name in wanted]


def resized(sizes: Sizes, overrides: list[str]) -> Sizes:
    """`NAME=VALUE` overrides, typed like the default they replace."""
    changes: dict[str, Any] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        current = getattr(sizes, name.strip(), None)
        if current is None or not value:
            raise SystemExit(f"evgrid: --size wants NAME=VALUE with NAME one of "
                             f"{', '.join(Sizes.__dataclass_fields__)}; got {item!r}")
        try:
            if isinstance(current, tuple):
                changes[name.strip()] = tuple(int(v) for v in value.split(","))
            else:
                changes[name.strip()] = type(current)(value)
        except ValueError:
            raise SystemExit(f"evgrid: --size {item!r}: not a {type(current).__name__}"
                             ) from None
    return replace(sizes, **changes)


def run(args: argparse.Namespace) -> int:
    names = selected(args.phases)
    # A producer racing a topic's first leader election retries on its own; say nothing.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    sizes = resized(SMOKE if args.smoke else Sizes(), args.size)
    if args.messages:
        sizes = replace(sizes, messages=args.messages)
    base = WorkerSettings.from_env()  # EVGRID_BROKER and EVGRID_BROKER_SECURITY_* as the worker
    external = bool(os.environ.get("EVGRID_BROKER"))
    started = time.monotonic()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + ("-smoke" if args.smoke else "")
    with tempfile.TemporaryDirectory(prefix="evgrid-bench-") as tmp:
        work = Path(tmp)
        broker = None if external else LocalKafka(data_dir=work / "kafka", port=0).start()
        if broker is not None:
            base = WorkerSettings.model_validate({**base.model_dump(), "broker": broker.bootstrap})
        say(f"evgrid bench: phases {', '.join(names)} against {base.bootstrap_servers} "
            f"({base.broker_security_protocol}); load average {load_average()}")
        try:
            results = asyncio.run(run_phases(base, sizes, work, names, args.parallel))
        finally:
            if broker is not None:
                broker.stop()
    results.update(elapsed_s=time.monotonic() - started, smoke=args.smoke, started=stamp,
                   security_protocol=base.broker_security_protocol)
    args.out.mkdir(parents=True, exist_ok=True)
    table = report(results)
    (args.out / f"{stamp}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    (args.out / f"{stamp}.md").write_text(table + "\n")
    say("")
    say(table)
    say(f"\nresults in {args.out / stamp}.json and .md")
    return 0
