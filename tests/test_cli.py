"""The command line: every sub-command listed, and a worker that imports only its own."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from evgrid.cli import COMMANDS, build_parser
from evgrid.settings import (
    GatewaySettings,
    KafkaSettings,
    SqlSettings,
    VenSettings,
    WorkerSettings,
)

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


@pytest.mark.parametrize(("command", "cls"), [
    ("worker", WorkerSettings), ("gateway", GatewaySettings), ("openadr", VenSettings),
    ("sql", SqlSettings), ("simulate", KafkaSettings), ("report", KafkaSettings),
    ("bench", WorkerSettings), ("demo", WorkerSettings)])
def test_each_command_help_lists_its_process_variables(
        command: str, cls: type[KafkaSettings], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser([command]).parse_args([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    listed = set(re.findall(r"^  (EVGRID_\w+)", text, re.M))
    assert listed == {variable for variable, _info in cls.variables()}
    assert "EVGRID_BROKER [kafka://127.0.0.1:9092]" in text
    others = {GatewaySettings: "EVGRID_GATEWAY_PORT", VenSettings: "EVGRID_OPENADR_VTN_URL",
              SqlSettings: "EVGRID_SQL_DSN", WorkerSettings: "EVGRID_STALE_AFTER_S"}
    for other, variable in others.items():
        assert (variable in listed) == (other is cls), (command, variable)
