"""`/health` as a readiness probe: 503 until the first assignment's tables are restored and
while rebalancing or recovering, 200 otherwise; a broker outage is reported, not fatal."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from evgrid import logs
from evgrid.web.health import health_status


def app(*, completed: bool, rebalancing: bool = False, recovering: bool = False,
        actives: int = 2) -> SimpleNamespace:
    done = asyncio.Event()
    if completed:
        done.set()
    return SimpleNamespace(
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=done,
                                                        in_recovery=recovering)),
        rebalancing=rebalancing,
        assignor=SimpleNamespace(assigned_actives=lambda: set(range(actives))))


@pytest.mark.parametrize(("state", "code", "status"), [
    ({"completed": False}, 503, "starting"),
    ({"completed": True, "rebalancing": True}, 503, "recovering"),
    ({"completed": True, "recovering": True}, 503, "recovering"),
    ({"completed": True}, 200, "ok"),
    ({"completed": True, "actives": 0}, 200, "ok"),  # more workers than partitions: serves
    ({"completed": True, "ingest_pending": True}, 503, "recovering"),
])
def test_readiness(state: dict, code: int, status: str) -> None:
    pending = state.pop("ingest_pending", False)
    got, body = health_status(app(**state), "evgrid", pending)
    assert body["ingest_pending"] is pending
    assert (got, body["status"]) == (code, status)
    assert body["app_id"] == "evgrid"


def test_broker_state_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = logs.BrokerWatch([("127.0.0.1", 1)], clock=lambda: 0.0, probe=lambda _: False)
    watch.outage.failure(0.0, "Connect call failed")
    monkeypatch.setattr(logs, "_WATCH", watch)
    code, body = health_status(app(completed=True), "evgrid")
    assert code == 200 and body["broker_connected"] is False
    monkeypatch.setattr(logs, "_WATCH", None)
    assert health_status(app(completed=True), "evgrid")[1]["broker_connected"] is None
