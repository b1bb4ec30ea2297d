"""Prometheus metrics: declared once here so every name evgrid exports is in one place
(the Grafana dashboard test checks its queries against this module)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DEADLETTERS = Counter(
    "evgrid_deadletter", "Messages sent to the dead-letter topic", ["topic", "reason"]
)
READINGS = Counter("evgrid_readings", "Meter values applied to station state")
READINGS_SUPERSEDED = Counter(
    "evgrid_readings_superseded", "Meter values older than the connector's current reading"
)
READINGS_UNMAPPED = Counter(
    "evgrid_readings_unmapped", "Meter values for stations with no zone mapping yet"
)
STATIONS_UNMAPPED = Gauge(
    "evgrid_stations_unmapped", "Stations with readings but no zone mapping (this worker)"
)
REPARTITIONED = Counter(
    "evgrid_repartitioned", "Messages whose key did not match their content, re-keyed", ["topic"]
)
ZONE_LOAD = Gauge("evgrid_zone_load_kw", "Live zone load", ["zone"])
ZONE_CAPACITY = Gauge("evgrid_zone_capacity_kw", "Sum of max_station_kw in the zone", ["zone"])
ZONE_UTILIZATION = Gauge("evgrid_zone_utilization_pct", "Zone load / capacity", ["zone"])
ZONE_CAP = Gauge("evgrid_zone_cap_kw", "Cap of the governing DR event (NaN when none)", ["zone"])
ALERTS = Counter("evgrid_alerts", "Alerts published", ["alert_type"])
COMMANDS = Counter("evgrid_commands", "Charging commands published", ["action"])
DR_ACTIVE = Gauge("evgrid_dr_active_events", "Active DR events (this worker)")
DR_NONCOMPLIANT = Gauge("evgrid_dr_noncompliant_stations", "Non-compliant stations (this worker)")
DR_SHORTFALL = Gauge("evgrid_dr_shortfall_kw", "Shortfall of the governing DR event", ["zone"])
DR_REACTION = Histogram(
    "evgrid_dr_reaction_seconds",
    "DR signal received by the worker -> last command of that decision published",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CONSUMER_LAG = Gauge(
    "evgrid_consumer_lag", "Messages not yet processed, per input partition", ["topic", "partition"]
)
# `evgrid openadr` (labelled by VEN name, so a worker's /metrics shows none of them).
OPENADR_CONNECTED = Gauge(
    "evgrid_openadr_connected", "1 while the VEN reaches its VTN, 0 while it does not", ["ven"]
)
OPENADR_LAST_POLL_AGE = Gauge(
    "evgrid_openadr_last_poll_age_seconds", "Seconds since the last answered poll of the VTN",
    ["ven"],
)
OPENADR_REJECTED = Counter(
    "evgrid_openadr_rejected", "Payloads the VEN rejected (VTN XML, Kafka messages)",
    ["source", "reason"],
)
OPENADR_PUBLISHED = Counter(
    "evgrid_openadr_signals", "DR signals the VEN published", ["signal_type"]
)
OPENADR_OPTS = Counter("evgrid_openadr_opts", "Opt responses sent to the VTN", ["opt_type"])
