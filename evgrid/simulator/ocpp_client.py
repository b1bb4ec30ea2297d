"""A lean simulated OCPP-J charger (1.6 or 2.0.1) for `evgrid simulate --ocpp` and the gateway
benchmark: raw frames over `websockets`, so thousands fit in one process beside the gateway.
(The tests use independent Java and Node chargers; this one only plays a fleet.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

#: Called with (station_id, action, payload, received_at) for every charging-profile call.
ProfileHook = Callable[[str, str, dict, float], None]
_ids = itertools.count(1)


def limit_kw(version: str, payload: dict) -> tuple[int, float]:
    """(connector or EVSE id, limit in kW) of a SetChargingProfile payload."""
    if version == "1.6":
        where, profile = payload["connectorId"], payload["csChargingProfiles"]
        schedule = profile["chargingSchedule"]
    else:
        where, profile = payload["evseId"], payload["chargingProfile"]
        schedule = profile["chargingSchedule"][0]
    period = schedule["chargingSchedulePeriod"][0]
    limit = float(period["limit"])
    if schedule["chargingRateUnit"] == "A":
        return where, limit * 230.0 * period.get("numberPhases", 3) / 1000.0
    return where, limit / 1000.0


def meter_payload(version: str, reading: dict) -> dict:
    """One `ocpp.meter_values`-shaped reading as the charger would send it."""
    ts = reading["event_ts"]
    watts, wh = reading["power_kw"] * 1000.0, reading["energy_kwh"] * 1000.0
    soc = reading.get("soc_percent")
    if version == "1.6":
        samples = [{"value": f"{watts:.1f}", "measurand": "Power.Active.Import", "unit": "W"},
                   {"value": f"{wh:.1f}", "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh"}]
        if soc is not None:
            samples.append({"value": str(soc), "measurand": "SoC", "unit": "Percent",
                            "location": "EV"})
        return {"connectorId": reading["connector_id"],
                "meterValue": [{"timestamp": ts, "sampledValue": samples}]}
    samples201: list[dict[str, Any]] = [
        {"value": round(watts, 1), "measurand": "Power.Active.Import",
         "unitOfMeasure": {"unit": "W"}},
        {"value": round(wh, 1), "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh"}}]
    if soc is not None:
        samples201.append({"value": soc, "measurand": "SoC", "location": "EV",
                           "unitOfMeasure": {"unit": "Percent"}})
    return {"evseId": reading["connector_id"],
            "meterValue": [{"timestamp": ts, "sampledValue": samples201}]}


class SimCharger:
    """Connects (and reconnects), boots, sends meter values on demand, answers profiles."""

    def __init__(self, url: str, station_id: str, version: str, *, accept: bool = True,
                 on_profile: ProfileHook | None = None, response_timeout_s: float = 30.0
                 ) -> None:
        self.url, self.station_id, self.version = url, station_id, version
        self.accept, self.on_profile = accept, on_profile
        self.response_timeout_s = response_timeout_s
        self.ws: ClientConnection | None = None
        self.booted = asyncio.Event()
        self._waiting: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def connect(self, attempts: int = 10) -> None:
        for attempt in range(attempts):
            try:
                self.ws = await connect(f"{self.url}/{self.station_id}",
                                        subprotocols=[f"ocpp{self.version}"],  # type: ignore[list-item]
                                        compression=None, open_timeout=30, ping_interval=None)
                break
            except (OSError, InvalidHandshake, TimeoutError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        self._reader = asyncio.create_task(self._read())
        boot = ({"chargePointVendor": "evgrid-sim", "chargePointModel": "sim"}
                if self.version == "1.6" else
                {"reason": "PowerUp", "chargingStation": {"vendorName": "evgrid-sim",
                                                          "model": "sim"}})
        await self.call("BootNotification", boot)
        self.booted.set()

    async def close(self) -> None:
        self.booted.clear()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def call(self, action: str, payload: dict) -> Any:
        assert self.ws is not None
        unique_id = str(next(_ids))
        future = asyncio.get_running_loop().create_future()
        self._waiting[unique_id] = future
        try:
            await self.ws.send(orjson.dumps([2, unique_id, action, payload]).decode())
            return await asyncio.wait_for(future, self.response_timeout_s)
        finally:
            self._waiting.pop(unique_id, None)

    async def send_readings(self, readings: list[dict]) -> int:
        """MeterValues for each reading; returns how many the gateway answered."""
        sent = 0
        if not self.booted.is_set():
            return 0
        for reading in readings:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await self.call("MeterValues", meter_payload(self.version, reading))
                sent += 1
        return sent

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame[0] in (3, 4):
                    future = self._waiting.get(frame[1])
                    if future is not None and not future.done():
                        future.set_result(frame[2] if frame[0] == 3 else None)
                elif frame[0] == 2:
                    await self.ws.send(orjson.dumps([3, frame[1], self._answer(
                        frame[2], frame[3])]).decode())

    def _answer(self, action: str, payload: dict) -> dict:
        now = time.time()
        if self.on_profile is not None:
            self.on_profile(self.station_id, action, payload, now)
        if action == "SetChargingProfile":
            return {"status": "Accepted" if self.accept else "Rejected"}
        if action == "ClearChargingProfile":
            return {"status": "Accepted"}
        return {}
