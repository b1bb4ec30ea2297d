"""The one command-line entry point: `evgrid <sub-command>`."""

from __future__ import annotations

import argparse
import importlib
import sys

from evgrid.settings import WorkerSettings


def _worker(args: argparse.Namespace) -> int:
    from evgrid.worker import run_worker

    overrides = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    return run_worker(WorkerSettings.from_env(**overrides))


#: Every sub-command besides `worker`, and the module whose `add_parser` defines it. Only the
#: command that runs is imported, so a worker does not carry the gateway's, bench's and
#: OpenADR's imports (ocpp, jsonschema, websockets, rich) in its memory.
COMMANDS = {
    "kafka": "evgrid.broker.cli",
    "gateway": "evgrid.gateway.cli",
    "demo": "evgrid.demo",
    "simulate": "evgrid.simulator.cli",
    "bench": "evgrid.bench.runner",
    "report": "evgrid.reports",
    "openadr": "evgrid.openadr.ven",
    "sql": "evgrid.sql.cli",
}


def _command(argv: list[str]) -> str | None:
    """The sub-command named on the command line, if it is one we know."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg == "worker" or arg in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evgrid",
        description="Demand-response engine for EV charging. Settings come from EVGRID_* "
        "environment variables (see docs/configuration.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a worker against EVGRID_BROKER",
                            **WorkerSettings.help_args())
    worker.add_argument("--web-port", type=int, default=None, help="overrides EVGRID_WEB_PORT")
    worker.set_defaults(func=_worker)

    wanted = _command(sys.argv[1:] if argv is None else argv)
    for name, module in COMMANDS.items():
        if wanted in (None, name):  # no command yet (or an unknown one): list them all
            importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
