"""The sink's Prometheus metrics (its own process: the worker never registers them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("evgrid_sql_rows", "Rows offered to PostgreSQL (a repeated key writes nothing)",
               ["table"])
RECORDS = Counter("evgrid_sql_records", "Kafka records written and committed", ["topic"])
ROWS_PER_S = Gauge("evgrid_sql_rows_per_second", "Rows written per second, over the last 10 s")
LAG = Gauge("evgrid_sql_consumer_lag", "Records behind the end of the sink's partitions",
            ["topic"])
LAST_COMMIT_AGE = Gauge("evgrid_sql_last_commit_age_seconds",
                        "Seconds since the last transaction committed (NaN: none yet)")
DATABASE_UP = Gauge("evgrid_sql_database_up", "1 while PostgreSQL answers")
BATCH_SECONDS = Histogram("evgrid_sql_batch_seconds", "One batch's transaction, start to commit",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
#: From the producer's timestamp on a record to its row being committed (visible).
FRESHNESS = Histogram("evgrid_sql_freshness_seconds",
                      "From publishing (record timestamp) to the row being visible", ["topic"],
                      buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
                               1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0))
RETENTION = Counter("evgrid_sql_retention_removed",
                    "Partitions dropped or rows deleted by retention", ["table"])
