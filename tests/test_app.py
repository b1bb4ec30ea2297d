"""The app's rebalance wiring: a recovery a newer rebalance superseded is not taken as done."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from evgrid.app import superseded_recovery


def app(newer_rebalance_begun: bool) -> SimpleNamespace:
    started = asyncio.Event()
    if newer_rebalance_begun:
        started.set()
    return SimpleNamespace(tables=SimpleNamespace(
        recovery=SimpleNamespace(signal_recovery_start=started)))


def test_a_recovery_ending_after_a_newer_rebalance_began_is_superseded() -> None:
    assert superseded_recovery(app(newer_rebalance_begun=True))
    assert not superseded_recovery(app(newer_rebalance_begun=False))
