"""The stations of the VEN's end-to-end test, as the test plays them for a real worker: zone
mappings on `config.station_zones`, readings on `ocpp.meter_values` (as the gateway would
normalise them), and the worker's commands read back to lower the loads it asked for."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from evgrid.process import WorkerProcess
from evgrid.settings import KafkaSettings
from evgrid.timeutil import iso
from tests.integration.harness import jdump, produce


def mapping(station_id: str, zone_id: str) -> dict[str, Any]:
    return {"station_id": station_id, "zone_id": zone_id, "max_station_kw": 150.0,
            "contract_max_kw": 150.0, "connector_max_kw": {"CCS": 150.0}}


def reading(station_id: str, kw: float, ts: float) -> dict[str, Any]:
    return {"station_id": station_id, "connector_id": 1,
            "session_id": f"sess-{station_id}" if kw else None, "connector_type": "CCS",
            "power_kw": round(kw, 3), "current_a": round(kw * 2.5, 3), "voltage_v": 400.0,
            "energy_kwh": 1.0, "soc_percent": 40, "event_ts": iso(ts)}


class Fleet:
    """Stations by zone with the load each draws now; `report()` sends one reading each."""

    def __init__(self, settings: KafkaSettings, zones: dict[str, dict[str, float]]) -> None:
        self.settings = settings
        self.zone_of = {sid: zone for zone, loads in zones.items() for sid in loads}
        self.loads = {sid: kw for loads in zones.values() for sid, kw in loads.items()}

    def in_zone(self, zone_id: str) -> set[str]:
        return {sid for sid, zone in self.zone_of.items() if zone == zone_id}

    def zone_kw(self, zone_id: str) -> float:
        return sum(self.loads[sid] for sid in self.in_zone(zone_id))

    async def map(self) -> None:
        await produce(self.settings.bootstrap_servers, self.settings.topics.station_zones,
                      [(sid.encode(), jdump(mapping(sid, zone)))
                       for sid, zone in self.zone_of.items()])

    async def report(self) -> None:
        now = time.time()
        await produce(self.settings.bootstrap_servers, self.settings.topics.meter_values,
                      [(sid.encode(), jdump(reading(sid, kw, now)))
                       for sid, kw in self.loads.items()])

    async def obey(self, commands: list[dict[str, Any]]) -> None:
        """Each commanded station draws its newest SET target from now on."""
        for command in commands:
            if command["action"] == "SET":
                self.loads[command["station_id"]] = command["target_power_kw"]
        await self.report()


async def zone_reaches(worker: WorkerProcess, zone_id: str, kw: float, timeout: float) -> None:
    """The worker's own view of the zone (GET /zones/{id}) shows `kw`."""
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await worker.get(f"/zones/{zone_id}")
        if status == 200 and abs(body["zone_total_power_kw"] - kw) < 1e-6:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"zone {zone_id} never reached {kw} kW in the worker: {body}")
