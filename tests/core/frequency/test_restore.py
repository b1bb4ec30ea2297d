"""The restore schedule: spread, reproducible per activation, different across activations."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.core.frequency.restore import release_schedule, seed_of

HELD = {f"cp{i:03d}": 5.0 + i for i in range(50)}
T = 1_800_000_000.0
ROOT = Path(__file__).resolve().parents[3]


def order(activation_id: str, held: dict[str, float] = HELD) -> list[str]:
    return [sid for sid, _, _ in release_schedule(activation_id, held, T, 300.0)]


def test_spread_evenly_first_at_spread_over_n_last_at_spread() -> None:
    s = release_schedule("z:1.000", HELD, T, 300.0)
    times = [t for _, t, _ in s]
    assert len(times) == 50 and len(set(times)) == 50
    assert times == sorted(times)
    assert math.isclose(times[0], T + 6.0) and math.isclose(times[-1], T + 300.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(math.isclose(g, 6.0) for g in gaps)
    assert {sid: kw for sid, _, kw in s} == HELD


def test_same_activation_same_order_different_activation_different_order() -> None:
    assert order("z1:1800000000.000") == order("z1:1800000000.000")
    assert order("z1:1800000000.000") != order("z1:1800000060.000")
    assert order("z1:1800000000.000") != sorted(HELD)
    # the order does not depend on the mapping's insertion order
    reversed_held = dict(reversed(list(HELD.items())))
    assert order("z1:7.000", reversed_held) == order("z1:7.000")


def test_order_is_the_same_in_another_process() -> None:
    """Python randomises str hashes per process; the seed must not depend on that."""
    code = ("from evgrid.core.frequency.restore import seed_of; "
            "print(seed_of('z1:1800000000.000'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)})
    assert int(out.stdout) == seed_of("z1:1800000000.000")


def test_no_station_is_always_last() -> None:
    lasts = {order(f"z1:{T + 60 * i:.3f}")[-1] for i in range(40)}
    assert len(lasts) > 10


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 200), st.floats(0.1, 3600.0), st.text(min_size=1, max_size=30))
def test_never_all_at_once(n: int, spread: float, activation_id: str) -> None:
    held = {f"s{i}": 1.0 for i in range(n)}
    times = [t for _, t, _ in release_schedule(activation_id, held, T, spread)]
    assert len(times) == n and min(times) > T and math.isclose(max(times), T + spread)
    assert max(times) - min(times) >= spread / 2 - 1e-6  # at least half the spread apart
    assert len(set(times)) == n


def test_nothing_held_nothing_scheduled() -> None:
    assert release_schedule("z:1.000", {}, T, 300.0) == []
