"""The arithmetic behind the bench's figures, on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from evgrid.bench.harness import Sizes
from evgrid.bench.runner import PHASES, resized, selected
from evgrid.bench.stats import (
    histogram_delta,
    histogram_figures,
    histogram_quantile,
    metric_sum,
    parse_histogram,
    percentiles,
)

EXPOSITION = """\
# HELP evgrid_dr_reaction_seconds DR signal received -> last command published
# TYPE evgrid_dr_reaction_seconds histogram
evgrid_dr_reaction_seconds_bucket{le="0.01"} 2.0
evgrid_dr_reaction_seconds_bucket{le="0.1"} 6.0
evgrid_dr_reaction_seconds_bucket{le="1.0"} 9.0
evgrid_dr_reaction_seconds_bucket{le="+Inf"} 10.0
evgrid_dr_reaction_seconds_count 10.0
evgrid_readings_total 120.0
evgrid_readings_superseded_total 7.0
evgrid_consumer_lag{partition="0",topic="m"} 3.0
evgrid_consumer_lag{partition="1",topic="m"} 4.0
"""


def test_percentiles_nearest_rank() -> None:
    samples = [float(v) for v in range(100, 0, -1)]  # 1..100, unordered
    assert percentiles(samples) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0}
    assert percentiles([]) == {}


def test_metric_sum_matches_whole_names_and_sums_label_sets() -> None:
    assert metric_sum(EXPOSITION, "evgrid_readings_total") == 120.0
    assert metric_sum(EXPOSITION, "evgrid_readings_superseded_total") == 7.0
    assert metric_sum(EXPOSITION, "evgrid_consumer_lag") == 7.0
    assert metric_sum(EXPOSITION, "evgrid_readings") == 0.0  # a prefix is not a name


def test_histogram_parse_and_quantiles() -> None:
    buckets = parse_histogram(EXPOSITION, "evgrid_dr_reaction_seconds")
    assert buckets == [(0.01, 2.0), (0.1, 6.0), (1.0, 9.0), (math.inf, 10.0)]
    # rank 5 of 10 lies in (0.01, 0.1], 3 of its 4 observations in: 0.01 + 0.09 * 3/4
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.0775)
    assert histogram_quantile(buckets, 0.99) == math.inf  # beyond the last finite bound
    assert histogram_quantile([(1.0, 0.0), (math.inf, 0.0)], 0.5) is None


def test_histogram_figures_over_a_delta() -> None:
    after = parse_histogram(EXPOSITION, "evgrid_dr_reaction_seconds")
    before = [(0.01, 2.0), (0.1, 2.0), (1.0, 2.0), (math.inf, 2.0)]
    delta = histogram_delta(after, before)
    assert delta == [(0.01, 0.0), (0.1, 4.0), (1.0, 7.0), (math.inf, 8.0)]
    figures = histogram_figures(delta)
    assert figures["count"] == 8 and figures["over_1s"] == 1
    assert figures["p50"] == pytest.approx(100.0)  # rank 4: the top of (10, 100] ms
    assert figures["p95"] is None and figures["beyond_ms"] == 1000.0
    assert figures["max_le_ms"] is None  # the highest observation is beyond 1 s
    quiet = histogram_figures([(0.01, 3.0), (0.1, 4.0), (1.0, 4.0), (math.inf, 4.0)])
    assert quiet["max_le_ms"] == 100.0 and quiet["over_1s"] == 0


def test_phase_selection_keeps_registry_order_and_refuses_unknown_names() -> None:
    assert selected("scaling, throughput") == ["throughput", "scaling"]
    assert selected(",".join(PHASES)) == list(PHASES)
    with pytest.raises(SystemExit, match=r"unknown bench phase.*'nope'"):
        selected("throughput,nope")


def test_size_overrides_are_typed_like_their_defaults() -> None:
    sizes = resized(Sizes(), ["memory_connectors=1000,5000", "recovery_rate=2500",
                              "latency_events=7"])
    assert sizes.memory_connectors == (1000, 5000) and sizes.recovery_rate == 2500.0
    assert sizes.latency_events == 7 and sizes.messages == Sizes().messages
    for bad in ("nope=1", "latency_events=many", "messages"):
        with pytest.raises(SystemExit, match="--size"):
            resized(Sizes(), [bad])
