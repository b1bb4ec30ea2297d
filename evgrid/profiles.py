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
from functools import lru_cache

from evgrid import codec
from evgrid.core.allocator import ConnectorLimit
from evgrid.core.control.commands import profile_id_for
from evgrid.timeutil import iso

__all__ = [
    "CONNECTOR",
    "STATION",
    "clear_profile_payloads",
    "profile_id_for",
    "set_profile_payloads",
    "station_profile_json",
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


#: Stand-ins for a station-wide profile's id and limit in its written form: an id no profile
#: has (they stay below 2^31), and a limit in kW whose one-decimal watts no stack level or
#: instant writes.
_ID_MARK = 98_765_432_109
_LIMIT_MARK_KW = 1_234_567.891


def station_profile_json(
    *, profile_id: int, stack_level: int, station_limit_kw: float,
    valid_from: float | datetime, valid_to: float | datetime,
) -> codec.Written:
    """A station-wide profile's `set_profile_payloads`, written (for `codec.dumps`): the
    decision's written profile with this station's id and limit put in. It is the usual
    command, ten thousand in one frequency activation, and building the payloads' thirty-odd
    dicts for each cost twice as long as the rest of its message."""
    pieces, id_at, limit_at = _station_template(stack_level, valid_from, valid_to)
    text = list(pieces)
    written_id = str(profile_id)
    for at in id_at:
        text[at] = written_id
    written_limit = codec.dumps(_one_decimal(station_limit_kw * 1000.0)).decode()
    for at in limit_at:
        text[at] = written_limit
    return codec.written("".join(text))


@lru_cache(maxsize=512)
def _station_template(
    stack_level: int, valid_from: float | datetime, valid_to: float | datetime,
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """A station-wide profile's written payloads in pieces, and which pieces are its id and
    which its limit: the payloads' own writing, so the two cannot differ."""
    text = codec.dumps(set_profile_payloads(
        profile_id=_ID_MARK, stack_level=stack_level, mode=STATION,
        station_limit_kw=_LIMIT_MARK_KW, connectors=(), valid_from=valid_from,
        valid_to=valid_to)).decode()
    id_mark = str(_ID_MARK)
    limit_mark = codec.dumps(_one_decimal(_LIMIT_MARK_KW * 1000.0)).decode()
    if text.count(id_mark) != 3 or text.count(limit_mark) != 2:
        raise RuntimeError(f"a station-wide profile no longer writes its id three times and "
                           f"its limit twice: {text}")
    pieces = []
    for part in text.split(id_mark):
        for n, piece in enumerate(part.split(limit_mark)):
            if n:
                pieces.append(limit_mark)
            pieces.append(piece)
        pieces.append(id_mark)
    pieces.pop()  # after the last part
    return (tuple(pieces), tuple(i for i, p in enumerate(pieces) if p == id_mark),
            tuple(i for i, p in enumerate(pieces) if p == limit_mark))
