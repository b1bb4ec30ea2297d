"""Series of zones a worker no longer owns are removed, not left at their last figures."""

from __future__ import annotations

from evgrid import metrics


def series(gauge: object) -> set[tuple[str, ...]]:
    return {tuple(s.labels.values()) for m in gauge.collect() for s in m.samples}  # type: ignore[attr-defined]


def test_forgetting_zones_removes_their_zone_and_site_series_only() -> None:
    for zone_id in ("FZ-1", "FZ-2"):
        for gauge in metrics.ZONE_GAUGES:
            gauge.labels(zone=zone_id).set(1.0)
        for gauge in metrics.SITE_GAUGES:
            gauge.labels(site=f"site-of-{zone_id}", zone=zone_id).set(1.0)
    metrics.FREQUENCY_LEVEL.labels(zone="FZ-3").set(0.5)  # one gauge only: the others skip it

    metrics.forget_zones({"FZ-1", "FZ-3"})

    for gauge in metrics.ZONE_GAUGES:
        zones = {labels[0] for labels in series(gauge)}
        assert "FZ-1" not in zones and "FZ-3" not in zones and "FZ-2" in zones
    for gauge in metrics.SITE_GAUGES:
        sites = series(gauge)
        assert ("site-of-FZ-1", "FZ-1") not in sites and ("site-of-FZ-2", "FZ-2") in sites
    metrics.forget_zones({"FZ-2"})  # leave the registry as other tests found it
    metrics.forget_zones(set())
