"""The chaos table: each fault-injection test adds a row; `make chaos` prints them all.

"Accounted" means reflected in state (a connector's latest reading, or one a later reading in
state supersedes), counted as applied by the worker, or found in the dead-letter topic.
"Duplicated decisions" counts commands seen more than once: harmless when they carry the same
`command_id` (the gateway drops them), a defect when one decision went out under two ids."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass
class ChaosRow:
    scenario: str
    faults: str
    messages_in: int
    accounted: int
    duplicates_same_id: int = 0
    duplicates_new_id: int = 0

    @property
    def lost(self) -> int:
        return self.messages_in - self.accounted


#: Where rows go: a file the session's main process reads back, so the table also appears
#: when the tests run in several processes (pytest-xdist). Set by tests/conftest.py.
ROWS_FILE_ENV = "EVGRID_CHAOS_ROWS"


def record(row: ChaosRow) -> ChaosRow:
    with open(os.environ[ROWS_FILE_ENV], "a") as out:
        out.write(json.dumps(asdict(row)) + "\n")
    return row


def recorded(path: str) -> list[ChaosRow]:
    try:
        with open(path) as rows:
            return [ChaosRow(**json.loads(line)) for line in rows if line.strip()]
    except FileNotFoundError:
        return []


def table(rows: list[ChaosRow]) -> str:
    head = ("scenario", "faults injected", "messages in", "accounted", "lost",
            "duplicated decisions (same id / new id)")
    body = [
        (r.scenario, r.faults, f"{r.messages_in:,}", f"{r.accounted:,}", f"{r.lost:,}",
         f"{r.duplicates_same_id} / {r.duplicates_new_id}")
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])
