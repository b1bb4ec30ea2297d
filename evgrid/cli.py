"""The one command-line entry point: `evgrid <sub-command>`."""

from __future__ import annotations

import argparse
import sys


def _worker(args: argparse.Namespace) -> int:
    from evgrid.settings import Settings
    from evgrid.worker import run_worker

    overrides = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    return run_worker(Settings.from_env(**overrides))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evgrid",
        description="Demand-response engine for EV charging. Settings come from EVGRID_* "
        "environment variables (see the README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a worker against EVGRID_BROKER")
    worker.add_argument("--web-port", type=int, default=None, help="overrides EVGRID_WEB_PORT")
    worker.set_defaults(func=_worker)

    from evgrid.broker import cli as kafka
    from evgrid.gateway import cli as gateway

    kafka.add_parser(sub)
    gateway.add_parser(sub)

    from evgrid import demo, reports
    from evgrid.bench import runner as bench
    from evgrid.openadr import ven as openadr
    from evgrid.simulator import cli as simulator

    demo.add_parser(sub)
    simulator.add_parser(sub)
    bench.add_parser(sub)
    reports.add_parser(sub)
    openadr.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
