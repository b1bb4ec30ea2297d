"""One charger's connection: the `ocpp` package's ChargePoint for 1.6J and 2.0.1, with
evgrid's handlers, frame checking and raw command delivery.

Malformed frames are answered with the CallError the spec names (1.6 spells two of them
`FormationViolation` and `OccurenceConstraintViolation`), counted, and the connection stays
up; the `ocpp` package alone would log them and answer nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, MessageType
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201

from evgrid.gateway.normalize import SampleError, Where, readings
from evgrid.metrics import GATEWAY_FRAMES_REJECTED, GATEWAY_SAMPLES_DROPPED

log = logging.getLogger(__name__)

_CODES_16 = {"FormatViolation": "FormationViolation",
             "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}


class Hub(Protocol):
    """What a connection needs from the gateway around it."""

    heartbeat_interval_s: int

    def forward(self, station_id: str, messages: list[dict]) -> None: ...
    def station_event(self, station_id: str, event: str, **fields: Any) -> None: ...
    def ready(self, station_id: str) -> None: ...
    def connector_type(self, station_id: str, connector_id: int) -> str: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Frames:
    """Frame parsing and CallError replies shared by both versions."""

    version: str
    id: str
    hub: Hub
    _booted: bool

    def _error_frame(self, unique_id: str, code: str, description: str) -> str:
        if self.version == "1.6":
            code = _CODES_16.get(code, code)
        return json.dumps([MessageType.CallError, unique_id, code, description[:500], {}])

    async def _reject(self, unique_id: str, code: str, description: str) -> None:
        GATEWAY_FRAMES_REJECTED.labels(self.version, code).inc()
        log.warning("%s: %s: %s", self.id, code, description[:200])
        await self._send(self._error_frame(unique_id, code, description))  # type: ignore[attr-defined]

    async def route_message(self, raw_msg: str | bytes) -> None:
        try:
            frame = json.loads(raw_msg)
        except (ValueError, UnicodeDecodeError):
            return await self._reject("-1", "FormatViolation", "frame is not JSON")
        if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
            return await self._reject(
                "-1", "ProtocolError",
                "frame must be [MessageTypeId, UniqueId, ...] with a string UniqueId")
        kind, unique_id = frame[0], frame[1]
        if kind == MessageType.Call:
            if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
                return await self._reject(unique_id, "ProtocolError",
                                          "a Call is [2, UniqueId, Action, {payload}]")
            msg = Call(unique_id, frame[2], frame[3])
            try:
                await self._handle_call(msg)  # type: ignore[attr-defined]
            except OCPPError as error:
                await self._reject(unique_id, error.code, str(error.details.get("cause")
                                                              or error.description))
            self._first_message()
        elif kind in (MessageType.CallResult, MessageType.CallError):
            cls = CallError if kind == MessageType.CallError else None
            try:
                msg = cls(*frame[1:]) if cls else _call_result(frame)
            except TypeError:
                return await self._reject(unique_id, "ProtocolError", "malformed response frame")
            self._response_queue.put_nowait(msg)  # type: ignore[attr-defined]
        else:
            code = "MessageTypeNotSupported" if self.version == "2.0.1" else "ProtocolError"
            await self._reject(unique_id, code, f"MessageTypeId {kind!r} is not 2, 3 or 4")

    def _first_message(self) -> None:
        """Deliver waiting commands after a BootNotification, or after the first message of
        a charger that reconnected without one (many 1.6 chargers do)."""
        if not self._booted:
            self._booted = True
            self.hub.ready(self.id)

    async def send_command(self, action: str, payload: dict) -> tuple[str, str | None]:
        """Send one ready-made payload; (status, reason). Raises TimeoutError."""
        call = Call(str(uuid.uuid4()), action, payload)
        async with self._call_lock:  # type: ignore[attr-defined]
            await self._send(call.to_json())  # type: ignore[attr-defined]
            response = await self._get_specific_response(  # type: ignore[attr-defined]
                call.unique_id, self._response_timeout)  # type: ignore[attr-defined]
        if response.message_type_id == MessageType.CallError:
            code = response.error_code
            status = "NotSupported" if code in ("NotSupported", "NotImplemented") else "CallError"
            return status, f"{code}: {response.error_description}"
        return _status_of(response.payload)

    def _forward(self, connector_id: int, session_id: str | None, meter_value: list) -> None:
        if connector_id < 1:
            GATEWAY_SAMPLES_DROPPED.labels("connector_0").inc()
            return
        where = Where(self.id, connector_id, session_id,
                      self.hub.connector_type(self.id, connector_id))
        try:
            messages = readings(where, meter_value, self.version)
        except SampleError as exc:
            GATEWAY_FRAMES_REJECTED.labels(self.version, "TypeConstraintViolation").inc()
            raise _type_error(str(exc)) from None
        if len(messages) < len(meter_value):
            GATEWAY_SAMPLES_DROPPED.labels("no_power").inc(len(meter_value) - len(messages))
        if messages:
            self.hub.forward(self.id, messages)


def _type_error(cause: str) -> OCPPError:
    from ocpp.exceptions import TypeConstraintViolationError

    return TypeConstraintViolationError(details={"cause": cause})


def _call_result(frame: list) -> Any:
    from ocpp.messages import CallResult

    return CallResult(frame[1], frame[2])


def _status_of(payload: dict) -> tuple[str, str | None]:
    status = payload.get("status") if isinstance(payload, dict) else None
    info = payload.get("statusInfo") if isinstance(payload, dict) else None
    reason = None
    if isinstance(info, dict):
        reason = ": ".join(str(p) for p in (info.get("reasonCode"), info.get("additionalInfo"))
                           if p)
    if status == "Accepted":
        return "Accepted", reason
    if status == "Unknown":  # ClearChargingProfile: no such profile left on the charger
        return "Accepted", reason or "charger had no matching profile (Unknown)"
    if status in ("Rejected", "NotSupported"):
        return status, reason or f"charger answered {status}"
    return "CallError", f"unexpected response status {status!r}"


class CentralSystem16(_Frames, ChargePoint16):
    version = "1.6"

    def __init__(self, station_id: str, connection: Any, hub: Hub, timeout_s: float) -> None:
        super().__init__(station_id, connection, response_timeout=timeout_s)
        self.hub, self._booted = hub, False
        self._transactions = 0
        self._sessions: dict[int, str] = {}

    @on("BootNotification")
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        self.hub.station_event(self.id, "boot", vendor=charge_point_vendor,
                               model=charge_point_model)
        return result16.BootNotification(current_time=_now(),
                                         interval=self.hub.heartbeat_interval_s,
                                         status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self) -> Any:
        return result16.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def on_status(self, connector_id: int, error_code: str, status: str, **_: Any) -> Any:
        self.hub.station_event(self.id, "status", connector_id=connector_id,
                               connector_status=status, error_code=error_code)
        return result16.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag: str) -> Any:
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    def on_start(self, connector_id: int, **_: Any) -> Any:
        self._transactions += 1
        transaction_id = int(datetime.now(UTC).timestamp()) % 1_000_000 * 1000 + \
            self._transactions % 1000
        self._sessions[connector_id] = str(transaction_id)
        return result16.StartTransaction(transaction_id=transaction_id,
                                         id_tag_info={"status": "Accepted"})

    @on("StopTransaction")
    def on_stop(self, transaction_id: int, **_: Any) -> Any:
        for connector_id, session in list(self._sessions.items()):
            if session == str(transaction_id):
                del self._sessions[connector_id]
        return result16.StopTransaction()

    @on("MeterValues")
    def on_meter_values(self, connector_id: int, meter_value: list,
                        transaction_id: int | None = None) -> Any:
        session = str(transaction_id) if transaction_id is not None else \
            self._sessions.get(connector_id)
        self._forward(connector_id, session, meter_value)
        return result16.MeterValues()


class CentralSystem201(_Frames, ChargePoint201):
    version = "2.0.1"

    def __init__(self, station_id: str, connection: Any, hub: Hub, timeout_s: float) -> None:
        super().__init__(station_id, connection, response_timeout=timeout_s)
        self.hub, self._booted = hub, False
        self._evse_of: dict[str, int] = {}  # transactionId -> EVSE
        self._session_of: dict[int, str] = {}  # EVSE -> running transactionId

    @on("BootNotification")
    def on_boot(self, charging_station: dict, reason: str, **_: Any) -> Any:
        self.hub.station_event(self.id, "boot", vendor=charging_station.get("vendor_name"),
                               model=charging_station.get("model"))
        return result201.BootNotification(current_time=_now(),
                                          interval=self.hub.heartbeat_interval_s,
                                          status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return result201.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def on_status(self, evse_id: int, connector_status: str, **_: Any) -> Any:
        self.hub.station_event(self.id, "status", connector_id=evse_id,
                               connector_status=connector_status)
        return result201.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token: dict, **_: Any) -> Any:
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    def on_transaction(self, event_type: str, transaction_info: dict, evse: dict | None = None,
                       meter_value: list | None = None, **_: Any) -> Any:
        transaction_id = transaction_info["transaction_id"]
        if evse and "id" in evse:
            self._evse_of[transaction_id] = evse["id"]
        evse_id = self._evse_of.get(transaction_id, 0)
        if meter_value:
            self._forward(evse_id, transaction_id, meter_value)
        if event_type == "Ended":
            self._evse_of.pop(transaction_id, None)
            self._session_of.pop(evse_id, None)
        else:
            self._session_of[evse_id] = transaction_id
        return result201.TransactionEvent()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list, **_: Any) -> Any:
        self._forward(evse_id, self._session_of.get(evse_id), meter_value)
        return result201.MeterValues()


CENTRAL_SYSTEMS: dict[str, type[CentralSystem16] | type[CentralSystem201]] = {
    "ocpp1.6": CentralSystem16,
    "ocpp2.0.1": CentralSystem201,
}

