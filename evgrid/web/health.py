"""`/health`: what a Kubernetes readiness probe and an operator need to know.

Ready (200) once the worker has joined its group, its tables are recovered and its batch
consumers (meter values, DR signals, station loads) have taken up the assignment; 503 while
it rebalances or restores state, so a rolling restart waits for each pod's recovery before it
takes down the next. Kafka being unreachable does not make a worker unready or unhealthy
(restarting it cannot bring the broker back): it is reported as `broker_connected`."""

from __future__ import annotations

from typing import Any

import faust

from evgrid.logs import broker_connected


def health_status(app: faust.App, app_id: str,
                  ingest_pending: bool = False) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for `/health`; `ingest_pending`: a batch consumer has not yet
    applied Faust's newest assignment (its readings would wait until it has)."""
    recovery = getattr(app.tables, "recovery", None)
    # Set once the first assignment's tables are restored (an empty assignment counts).
    started = recovery is not None and recovery.completed.is_set()
    recovering = bool(getattr(recovery, "in_recovery", False))
    rebalancing = bool(app.rebalancing)
    ready = started and not (recovering or rebalancing or ingest_pending)
    status = "ok" if ready else "recovering" if started else "starting"
    body = {
        "status": status,
        "app_id": app_id,
        "rebalancing": rebalancing,
        "recovering": recovering,
        "ingest_pending": ingest_pending,
        "active_partitions": len(app.assignor.assigned_actives()),
        "broker_connected": broker_connected(),
    }
    return (200 if ready else 503), body
