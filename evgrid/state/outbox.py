"""The control outbox on disk: outputs the broker has not acknowledged survive the worker.

A decision taken while the broker is away is state at once (the zone's controller says the
station was cleared), but its output only exists in the outbox. A worker killed then would
come back believing it had told the station, and the station would never hear it. So an output
is written here as soon as one send of it has failed, and every output taken while the broker
is away is written when it is taken; it is deleted when Kafka acknowledges it or a newer
output of its slot replaces it. A restarted worker on the same data directory sends what it
finds here first, unchanged (same bytes, same `command_id`).

In normal operation nothing is written: outputs are acknowledged in milliseconds.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from rocksdict import Options, Rdict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Held:
    """One output as it was handed over."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list | None
    slot: Hashable | None


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class OutboxStore:
    """Held outputs by a key that sorts in the order they were taken (`name`), across
    restarts: the restarted worker's outputs sort after the ones it found."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        opts = Options()
        opts.create_if_missing(True)
        self.db = Rdict(str(path), opts)

    @classmethod
    def open(cls, path: Path) -> OutboxStore | None:
        """The store at `path`, or None (logged) when it cannot be opened: the worker then
        holds its outputs in memory only, which is no reason not to run."""
        try:
            return cls(path)
        except Exception as exc:  # rocksdict raises plain Exceptions (a lock held, a bad dir)
            log.error("evgrid: the outbox on disk at %s is unavailable (%s): outputs waiting "
                      "for the broker are held in memory only", path, exc)
            return None

    def save(self, name: str, held: Held) -> None:
        slot = None if held.slot is None else list(held.slot)  # type: ignore[arg-type]
        self.db[name.encode()] = orjson.dumps({
            "topic": held.topic, "key": _b64(held.key), "value": _b64(held.value),
            "headers": [[k, _b64(v)] for k, v in held.headers] if held.headers else None,
            "slot": slot,
        })

    def forget(self, name: str) -> None:
        self.db.delete(name.encode())

    def load(self) -> Iterator[tuple[str, Held]]:
        """Everything held, oldest first. An entry that does not decode is logged and
        removed: it cannot be sent as it was."""
        for raw_name, raw in list(self.db.items()):
            name = bytes(raw_name).decode()
            try:
                d = orjson.loads(bytes(raw))
                value = _unb64(d["value"])
                assert value is not None
                held = Held(
                    topic=d["topic"], key=_unb64(d["key"]), value=value,
                    headers=[(k, _unb64(v)) for k, v in d["headers"]] if d["headers"] else None,
                    slot=None if d["slot"] is None else tuple(d["slot"]),
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AssertionError):
                log.error("evgrid: outbox entry %s on disk is unreadable; removed", name)
                self.forget(name)
                continue
            yield name, held

    def close(self) -> None:
        self.db.close()
