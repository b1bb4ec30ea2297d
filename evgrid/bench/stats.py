"""Pure arithmetic behind the figures: percentiles of samples, quantiles of a Prometheus
histogram, sums of Prometheus samples. No Kafka, no clock, so it is tested on its own."""

from __future__ import annotations

import math
from collections.abc import Sequence

Buckets = list[tuple[float, float]]  # (upper bound `le`, cumulative count), +Inf last

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 and the max; empty when there are no samples."""
    if not samples:
        return {}
    ordered = sorted(samples)
    n = len(ordered)
    out = {name: ordered[max(0, math.ceil(q * n) - 1)] for name, q in QUANTILES.items()}
    out["max"] = ordered[-1]
    return out


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of `name` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and len(line) > len(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def parse_histogram(text: str, name: str) -> Buckets:
    """The cumulative buckets of histogram `name` (label sets summed), sorted by bound."""
    prefix = f"{name}_bucket{{"
    counts: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels, value = line[len(prefix):].rsplit(" ", 1)
        le = next(part.split("=", 1)[1].strip('"}') for part in labels.split(",")
                  if part.startswith("le="))
        bound = math.inf if le == "+Inf" else float(le)
        counts[bound] = counts.get(bound, 0.0) + float(value)
    return sorted(counts.items())


def histogram_delta(after: Buckets, before: Buckets) -> Buckets:
    """What was observed between two readings of the same histogram."""
    earlier = dict(before)
    return [(le, count - earlier.get(le, 0.0)) for le, count in after]


def histogram_quantile(buckets: Buckets, q: float) -> float | None:
    """Prometheus' `histogram_quantile`: linear inside the bucket holding the rank. Returns
    `inf` when the rank falls in the +Inf bucket, None when nothing was observed."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(le):
                return math.inf
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return math.inf


def histogram_figures(buckets: Buckets, over_s: float = 1.0) -> dict[str, float | int | None]:
    """Count, interpolated p50/p95/p99 and the bound of the highest non-empty bucket, in ms;
    `over_1s` is exact only when `over_s` is a bucket bound (it is for DR_REACTION).
    A figure beyond the last finite bound is None, with that bound as `beyond_ms`."""
    count = int(buckets[-1][1]) if buckets else 0
    finite = [le for le, _ in buckets if not math.isinf(le)]
    out: dict[str, float | int | None] = {"count": count,
                                          "beyond_ms": finite[-1] * 1000 if finite else None}
    for name, q in QUANTILES.items():
        value = histogram_quantile(buckets, q)
        out[name] = None if value is None or math.isinf(value) else value * 1000
    highest = None
    below = 0.0
    for le, cumulative in buckets:
        if cumulative > below:
            highest = le
        below = cumulative
    out["max_le_ms"] = None if highest is None or math.isinf(highest) else highest * 1000
    at_bound = dict(buckets).get(over_s)
    out["over_1s"] = None if at_bound is None else int(count - at_bound)
    return out
