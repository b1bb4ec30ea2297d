"""The restore schedule: after a frequency activation, stations are released one by one.

Releasing a whole fleet at once makes the load rebound in one step, itself a frequency event.
So each station gets its own release time, spread evenly over the program's
`restore_spread_s`, in a random order that the activation id alone decides: the same
activation always releases in the same order (a restarted worker continues the same schedule),
two activations (almost surely) in different orders (no station is always last).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

#: One pending release: (station_id, release time, the kW it stays limited to until then)
Release = tuple[str, float, float]


def seed_of(activation_id: str) -> int:
    """A seed that is the same in every process (Python's hash() of a str is not)."""
    return int.from_bytes(hashlib.sha256(activation_id.encode()).digest()[:8], "big")


def release_schedule(
    activation_id: str, held: Mapping[str, float], start: float, spread_s: float
) -> list[Release]:
    """Each held station's release time, soonest first: the stations in an order shuffled by
    the activation id, the i-th of n (from 1) released at start + spread_s * i / n. The first
    goes at start + spread/n, the last at start + spread; no two at the same instant when
    spread_s > 0."""
    order = sorted(held)
    random.Random(seed_of(activation_id)).shuffle(order)
    n = len(order)
    return [(sid, start + spread_s * (i + 1) / n, float(held[sid])) for i, sid in enumerate(order)]
