"""Ready-to-send OCPP payloads for a charging limit, in 1.6 and 2.0.1.

Default is one station-wide limit (1.6 ChargePointMaxProfile on connector 0, 2.0.1
ChargingStationMaxProfile on EVSE 0). Many chargers reject station-max profiles, so a station
can ask for per-connector TxDefaultProfile instead. TxProfile is never used: it needs a running
transaction. Every SET carries `validTo`, so a charger reverts by itself if later messages are
lost. Limits carry one decimal, as both schemas require.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from evgrid.core.allocator import ConnectorLimit
from evgrid.core.control.commands import profile_id_for
from evgrid.timeutil import iso

__all__ = [
    "CONNECTOR",
    "STATION",
    "clear_profile_payloads",
    "profile_id_for",
    "set_profile_payloads",
]

STATION = "station"
CONNECTOR = "connector"


def _one_decimal(value: float) -> float:
    """Round down to one decimal: a limit is never rounded above what was allocated."""
    return math.floor(value * 10.0 + 1e-9) / 10.0


def _period_16(limit: float, phases: int | None) -> dict:
    period: dict = {"startPeriod": 0, "limit": _one_decimal(limit)}
    if phases is not None:
        period["numberPhases"] = phases
    return period


def _connector_rate(c: ConnectorLimit) -> tuple[str, float, int | None]:
    if c.limit_a is not None:
        return "A", c.limit_a, 3
    return "W", c.limit_kw * 1000.0, None


def set_profile_payloads(
    *,
    profile_id: int,
    stack_level: int,
    mode: str,
    station_limit_kw: float,
    connectors: Sequence[ConnectorLimit],
    valid_from: float | datetime,
    valid_to: float | datetime,
) -> dict[str, list[dict]]:
    """Both versions' SetChargingProfile payloads; the validity bounds as datetimes or epoch
    seconds (a decision's commands pass its instants as they are)."""
    frm, to = iso(valid_from), iso(valid_to)
    if mode == STATION:
        targets: list[tuple[int, str, str, float, int | None]] = [
            (0, "ChargePointMaxProfile", "W", station_limit_kw * 1000.0, None)
        ]
    elif mode == CONNECTOR:
        targets = [
            (c.connector_id, "TxDefaultProfile", *_connector_rate(c)) for c in connectors
        ]
    else:
        raise ValueError(f"profile mode must be 'station' or 'connector', not {mode!r}")
    v16, v201 = [], []
    for n, (where, purpose16, unit, limit, phases) in enumerate(targets):
        pid = profile_id + n if mode == CONNECTOR else profile_id
        period = _period_16(limit, phases)  # the same period in both versions
        v16.append(
            {
                "action": "SetChargingProfile",
                "payload": {
                    "connectorId": where,
                    "csChargingProfiles": {
                        "chargingProfileId": pid,
                        "stackLevel": stack_level,
                        "chargingProfilePurpose": purpose16,
                        "chargingProfileKind": "Absolute",
                        "validFrom": frm,
                        "validTo": to,
                        "chargingSchedule": {
                            "startSchedule": frm,
                            "chargingRateUnit": unit,
                            "chargingSchedulePeriod": [period],
                        },
                    },
                },
            }
        )
        purpose201 = "ChargingStationMaxProfile" if mode == STATION else "TxDefaultProfile"
        v201.append(
            {
                "action": "SetChargingProfile",
                "payload": {
                    "evseId": where,
                    "chargingProfile": {
                        "id": pid,
                        "stackLevel": stack_level,
                        "chargingProfilePurpose": purpose201,
                        "chargingProfileKind": "Absolute",
                        "validFrom": frm,
                        "validTo": to,
                        "chargingSchedule": [
                            {
                                "id": pid,
                                "startSchedule": frm,
                                "chargingRateUnit": unit,
                                "chargingSchedulePeriod": [period],
                            }
                        ],
                    },
                },
            }
        )
    return {"1.6": v16, "2.0.1": v201}


def clear_profile_payloads(
    *, profile_id: int, mode: str, connectors: Sequence[ConnectorLimit] | Sequence[int]
) -> dict[str, list[dict]]:
    """Clear exactly the profiles evgrid set, by id: other limit sources stay untouched."""
    if mode == STATION:
        ids = [profile_id]
    elif mode == CONNECTOR:
        ids = [profile_id + n for n in range(len(connectors))]
    else:
        raise ValueError(f"profile mode must be 'station' or 'connector', not {mode!r}")
    return {
        "1.6": [{"action": "ClearChargingProfile", "payload": {"id": pid}} for pid in ids],
        "2.0.1": [
            {"action": "ClearChargingProfile", "payload": {"chargingProfileId": pid}}
            for pid in ids
        ],
    }
