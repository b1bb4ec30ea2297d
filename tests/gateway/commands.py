"""Commands as the worker publishes them, for the gateway tests."""

from __future__ import annotations

import time

from evgrid.profiles import STATION, clear_profile_payloads, profile_id_for, set_profile_payloads
from evgrid.timeutil import from_epoch, iso


def command(station_id: str, command_id: str, kw: float = 11.0, valid_s: float = 600.0,
            at: float | None = None, action: str = "SET", signal_id: str = "S1") -> dict:
    now = at or time.time()
    pid = profile_id_for(signal_id, station_id)
    ocpp = (set_profile_payloads(profile_id=pid, stack_level=1, mode=STATION,
                                 station_limit_kw=kw, connectors=[], valid_from=from_epoch(now),
                                 valid_to=from_epoch(now + valid_s))
            if action == "SET" else clear_profile_payloads(profile_id=pid, mode=STATION,
                                                           connectors=[]))
    return {"command_id": command_id, "action": action, "reason": "DR",
            "station_id": station_id, "zone_id": "Z1",
            "target_power_kw": kw if action == "SET" else None, "station_shed_kw": 0.0,
            "signal_id": signal_id, "priority": 2, "dr_end_ts": iso(now + valid_s),
            "command_ts": iso(now), "connectors": [], "ocpp": ocpp}


