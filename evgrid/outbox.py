"""The control outputs' outbox: what the controller decided, held until Kafka acknowledges it.

A decision is state the moment it is taken (the zone persists it); publishing is a separate
step that may take as long as the broker is away. Each output waits here until the control
link's producer acknowledges it, and is sent again, unchanged (same bytes, same
`command_id`), after any failure. Bounded: an output with a slot (a station's command for
one event, an event's status) replaces a waiting one of the same slot, so a long outage keeps
the newest decision per station, not every step; outputs without one (reports, alerts) are
all kept, up to `keep_max`, beyond which the oldest is dropped and counted.

Pure bookkeeping, no Kafka and no clock: `ControlLink` drives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

Callback = Callable[[asyncio.Future], Any]

#: Outputs without a slot (reports, alerts) held at most; more are not expected from any
#: outage (a report per event, an alert per episode), so this only guards memory.
KEEP_MAX = 100_000


@dataclass(slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: list | None
    slot: Hashable | None
    seq: int
    callbacks: list[Callback] = field(default_factory=list)
    attempts: int = 0
    #: Its name in the store on disk, once written there (the broker was away).
    stored: str | None = None
    #: When it was handed over (the caller's monotonic clock).
    born: float = 0.0


class Outbox:
    """Outputs waiting (not yet handed to the producer) and in flight (handed, not acked).
    One output per slot is in flight at a time, so a slot's outputs leave in order."""

    def __init__(self, keep_max: int = KEEP_MAX,
                 on_superseded: Callable[[Output], None] = lambda _out: None,
                 on_dropped: Callable[[Output], None] = lambda _out: None) -> None:
        self.keep_max = keep_max
        #: An output a newer one of its slot replaced, or one dropped beyond the bound: it
        #: will never be sent.
        self.on_superseded = on_superseded
        self.on_dropped = on_dropped
        self.waiting: dict[Hashable, Output] = {}  # by slot, or ("seq", n) without one
        self.in_flight: dict[int, Output] = {}  # by seq
        self._busy_slots: set[Hashable] = set()
        self._seq = 0
        self._unsorted = False
        self._unslotted = 0
        self.superseded = 0
        self.dropped = 0
        self.peak = 0

    def __len__(self) -> int:
        return len(self.waiting) + len(self.in_flight)

    @property
    def empty(self) -> bool:
        return not self.waiting and not self.in_flight

    def put(self, topic: str, key: bytes | None, value: bytes, headers: list | None = None,
            slot: Hashable | None = None, callback: Callback | None = None) -> Output:
        """Hold one output; it replaces a waiting output of the same slot (which is then
        superseded: it was never sent, and never will be)."""
        self._seq += 1
        out = Output(topic, key, value, headers, slot, self._seq)
        if callback is not None:
            out.callbacks.append(callback)
        if slot is None:
            self._unslotted += 1
            self.waiting[("seq", out.seq)] = out
            if self._unslotted > self.keep_max:
                self._drop_oldest_unslotted()
        else:
            older = self.waiting.pop(slot, None)
            if older is not None:
                self.superseded += 1
                self.on_superseded(older)
            self.waiting[slot] = out
        self.peak = max(self.peak, len(self))
        return out

    def _drop_oldest_unslotted(self) -> None:
        for k, out in self.waiting.items():
            if out.slot is None:
                del self.waiting[k]
                self._unslotted -= 1
                self.dropped += 1
                self.on_dropped(out)
                return

    def take(self) -> list[Output]:
        """Waiting outputs whose slot has nothing in flight, oldest first, now in flight."""
        if self._unsorted:  # failed outputs went back to the end: put them in their place
            self._unsorted = False
            self.waiting = dict(sorted(self.waiting.items(), key=lambda kv: kv[1].seq))
        ready = [k for k, out in self.waiting.items()
                 if out.slot is None or out.slot not in self._busy_slots]
        taken = []
        for k in ready:
            out = self.waiting.pop(k)
            if out.slot is None:
                self._unslotted -= 1
            else:
                self._busy_slots.add(out.slot)
            out.attempts += 1
            self.in_flight[out.seq] = out
            taken.append(out)
        return taken

    def acked(self, out: Output) -> None:
        self.in_flight.pop(out.seq, None)
        self._busy_slots.discard(out.slot)

    def failed(self, out: Output) -> None:
        """Not acknowledged: waits again, in its place by age, unless a newer output of its
        slot came meanwhile (which supersedes it)."""
        self.acked(out)
        if out.slot is None:
            self._unslotted += 1
            self.waiting[("seq", out.seq)] = out
        elif out.slot in self.waiting:  # the newer output of its slot stands
            self.superseded += 1
            self.on_superseded(out)
            return
        else:
            self.waiting[out.slot] = out
        self._unsorted = True
