"""Bookkeeping shared by the chaos tests: what was sent, and where each message ended up."""

from __future__ import annotations

import time
from datetime import datetime

from evgrid.process import WorkerProcess
from evgrid.settings import WorkerSettings
from evgrid.state.codecs import ZONE_CONTROL
from evgrid.tables import TABLES, changelog_topic
from tests.integration.harness import read_topic
from tests.integration.test_dr_loop import Stations


class CountingStations(Stations):
    """The test's fleet, remembering how many readings it sent and each station's last one."""

    def __init__(self, bootstrap: str, topic: str, loads: dict[str, float]) -> None:
        super().__init__(bootstrap, topic, loads)
        self.sent_by: dict[str, int] = {}
        self.last_ts: dict[str, float] = {}

    @property
    def sent(self) -> int:
        return sum(self.sent_by.values())

    async def report(self, ts: float | None = None, only: list[str] | None = None) -> None:
        ts = round(ts or time.time(), 3)  # event times travel with millisecond precision
        await super().report(ts, only)
        for sid in self.loads:
            if only is None or sid in only:
                self.sent_by[sid] = self.sent_by.get(sid, 0) + 1
                self.last_ts[sid] = ts


#: Event times travel as ISO-8601 with milliseconds: equal within rounding.
SAME_TS = 0.0015


async def connector_times(worker: WorkerProcess, station_id: str) -> dict[int, float]:
    """Event time of each connector's reading held in state, from `/stations/{id}` (any
    worker answers: table_route)."""
    status, body = await worker.get(f"/stations/{station_id}")
    if status != 200:
        return {}
    return {c["connector_id"]: datetime.fromisoformat(c["event_ts"]).timestamp()
            for c in body.get("connectors", [])}


async def readings_accounted(worker: WorkerProcess, stations: CountingStations) -> int:
    """Readings reflected in state: a station whose connector holds its last reading accounts
    for all its readings (each earlier one is superseded); otherwise only the ones before the
    reading it holds. Any worker answers (table_route)."""
    accounted = 0
    for sid, last in stations.last_ts.items():
        held = (await connector_times(worker, sid)).values()
        if held and abs(max(held) - last) < SAME_TS:
            accounted += stations.sent_by[sid]
    return accounted


def duplicated_decisions(commands: list[dict]) -> tuple[int, int]:
    """(repeats under a command_id already seen, repeats of a station's standing decision
    under a new command_id). The first is at-least-once at work; the second is a defect."""
    seen: set[str] = set()
    standing: dict[str, tuple[str, float | None, str]] = {}
    same = new = 0
    for c in commands:
        if c["command_id"] in seen:
            same += 1
            continue
        seen.add(c["command_id"])
        decision = (c["action"], c.get("target_power_kw"), c["command_id"])
        prev = standing.get(c["station_id"])
        if prev is not None and prev[:2] == decision[:2]:
            new += 1
        standing[c["station_id"]] = decision
    return same, new


async def decisions_persisted(settings: WorkerSettings, commands: list[dict]) -> bool:
    """The zone-control changelog holds these commands as each station's standing decision:
    a worker killed from now on comes back with them. (Faust writes a table's changes to its
    changelog on its own commit interval, not at once.)"""
    topic = changelog_topic(settings.app_id, TABLES["zone_control"][0])
    latest: dict[bytes, dict] = {}
    for r in await read_topic(settings.bootstrap_servers, topic):
        if r.key is not None and r.value is not None:
            latest[r.key] = ZONE_CONTROL.loads(r.value).controller
    held = {s["station_id"]: (s["commanded"] or {}).get("command_id")
            for controller in latest.values() for s in controller["stations"]}
    return all(held.get(c["station_id"]) == c["command_id"] for c in commands)
