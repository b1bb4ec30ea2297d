"""A charger played with the `ocpp` package's client role (unit and gateway tests only; the
end-to-end tests use independent Java and Node implementations)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import ClientConnection, connect

# What the charger answers to SetChargingProfile: a status, "CallError", or "Silent".
ANSWERS = ("Accepted", "Rejected", "NotSupported", "CallError", "Silent")


class _Answering:
    answer: str = "Accepted"
    received: list[tuple[str, dict]]

    async def _answer(self, action: str, payload: dict, result: Any, **extra: Any) -> Any:
        self.received.append((action, payload))
        if self.answer == "CallError":
            raise InternalError(description="profile store full")
        if self.answer == "Silent":
            await asyncio.sleep(3600)
        return result(status=self.answer, **extra)


class Py16(_Answering, CP16):
    @on("SetChargingProfile")
    async def on_set(self, connector_id: int, cs_charging_profiles: dict) -> Any:
        return await self._answer("SetChargingProfile", cs_charging_profiles,
                                  result16.SetChargingProfile)

    @on("ClearChargingProfile")
    async def on_clear(self, **payload: Any) -> Any:
        self.received.append(("ClearChargingProfile", payload))
        return result16.ClearChargingProfile(status="Accepted")

    async def boot(self) -> None:
        await self.call(call16.BootNotification(charge_point_vendor="py", charge_point_model="t"))

    async def meter(self, watts: float, ts: str, connector_id: int = 1) -> None:
        await self.call(call16.MeterValues(connector_id=connector_id, meter_value=[{
            "timestamp": ts, "sampledValue": [
                {"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"}]}]))


class Py201(_Answering, CP201):
    @on("SetChargingProfile")
    async def on_set(self, evse_id: int, charging_profile: dict) -> Any:
        extra = {}
        if self.answer == "Rejected":
            extra["status_info"] = {"reason_code": "NoCapacity",
                                    "additional_info": "site limit lower"}
        return await self._answer("SetChargingProfile", charging_profile,
                                  result201.SetChargingProfile, **extra)

    @on("ClearChargingProfile")
    async def on_clear(self, **payload: Any) -> Any:
        self.received.append(("ClearChargingProfile", payload))
        return result201.ClearChargingProfile(status="Accepted")

    async def boot(self) -> None:
        await self.call(call201.BootNotification(
            charging_station={"vendor_name": "py", "model": "t"}, reason="PowerUp"))

    async def meter(self, watts: float, ts: str, evse_id: int = 1) -> None:
        await self.call(call201.MeterValues(evse_id=evse_id, meter_value=[{
            "timestamp": ts, "sampledValue": [
                {"value": watts, "measurand": "Power.Active.Import"}]}]))


class Session:
    """A connected charger: `async with Session(url, "CP-1", "1.6") as cp: ...`."""

    def __init__(self, url: str, station_id: str, version: str = "1.6", answer: str = "Accepted",
                 boot: bool = True, **connect_kw: Any) -> None:
        self.url, self.station_id, self.version = url, station_id, version
        self.answer, self.boot, self.connect_kw = answer, boot, connect_kw
        self.ws: ClientConnection | None = None
        self.cp: Py16 | Py201 | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Py16 | Py201:
        self.ws = await connect(f"{self.url}/{self.station_id}",
                                subprotocols=[f"ocpp{self.version}"], **self.connect_kw)
        cls = Py16 if self.version == "1.6" else Py201
        self.cp = cls(self.station_id, self.ws, response_timeout=10)
        self.cp.answer, self.cp.received = self.answer, []
        self._task = asyncio.create_task(self.cp.start())
        if self.boot:
            await self.cp.boot()
        return self.cp

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.ws:
            await self.ws.close()
