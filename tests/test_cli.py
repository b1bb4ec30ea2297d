"""The command line: every sub-command listed, and a worker that imports only its own."""

from __future__ import annotations

import subprocess
import sys

from evgrid.cli import COMMANDS, build_parser

HEAVY = ("evgrid.gateway.cli", "evgrid.bench.runner", "evgrid.openadr.ven", "ocpp", "rich")


def test_help_lists_every_sub_command() -> None:
    text = build_parser([]).format_help()
    for name in ("worker", *COMMANDS):
        assert name in text


def test_a_worker_does_not_import_the_other_commands_modules() -> None:
    """A worker's memory does not carry modules only other sub-commands use."""
    probe = ("import sys; from evgrid.cli import build_parser; "
             "build_parser(['worker']).parse_args(['worker']); "
             f"print([m for m in {HEAVY!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
    probe = probe.replace("['worker']", "['gateway']")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert "evgrid.gateway.cli" in loaded  # the probe sees an import when there is one
