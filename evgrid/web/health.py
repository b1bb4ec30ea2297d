"""`/health`: what a Kubernetes readiness probe and an operator need to know.

Ready (200) once the worker has joined its group and its tables are recovered; 503 while it
rebalances or restores state, so a rolling restart waits for each pod's recovery before it
takes down the next. Kafka being unreachable does not make a worker unready or unhealthy
(restarting it cannot bring the broker back): it is reported as `broker_connected`."""

from __future__ import annotations

from typing import Any

import faust

from evgrid.logs import broker_connected


def health_status(app: faust.App, app_id: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for `/health`."""
    recovery = getattr(app.tables, "recovery", None)
    # Set once the first assignment's tables are restored (an empty assignment counts).
    started = recovery is not None and recovery.completed.is_set()
    recovering = bool(getattr(recovery, "in_recovery", False))
    rebalancing = bool(app.rebalancing)
    ready = started and not (recovering or rebalancing)
    status = "ok" if ready else "recovering" if started else "starting"
    body = {
        "status": status,
        "app_id": app_id,
        "rebalancing": rebalancing,
        "recovering": recovering,
        "active_partitions": len(app.assignor.assigned_actives()),
        "broker_connected": broker_connected(),
    }
    return (200 if ready else 503), body
