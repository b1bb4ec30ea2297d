"""The `ocpp.commands.set_charging_profile` message for one decision, with its OCPP payloads,
written in exactly `ChargingCommand`'s shape (the tests validate every shape it makes)."""

from __future__ import annotations

from evgrid import codec
from evgrid.core.control import Command
from evgrid.profiles import (
    STATION,
    clear_profile_payloads,
    set_profile_payloads,
    station_profile_json,
)
from evgrid.timeutil import iso


def command_json(cmd: Command) -> bytes:
    """The message on the wire."""
    ocpp: dict[str, list[dict]] | codec.Written
    if cmd.action == "SET" and cmd.profile_mode == STATION:
        assert cmd.target_power_kw is not None
        ocpp = station_profile_json(
            profile_id=cmd.profile_id, stack_level=cmd.stack_level,
            station_limit_kw=cmd.target_power_kw, valid_from=cmd.command_ts,
            valid_to=cmd.dr_end_ts,
        )
    elif cmd.action == "SET":
        assert cmd.target_power_kw is not None
        ocpp = set_profile_payloads(
            profile_id=cmd.profile_id,
            stack_level=cmd.stack_level,
            mode=cmd.profile_mode,
            station_limit_kw=cmd.target_power_kw,
            connectors=cmd.connectors,
            valid_from=cmd.command_ts,
            valid_to=cmd.dr_end_ts,
        )
    else:
        ocpp = clear_profile_payloads(
            profile_id=cmd.profile_id, mode=cmd.profile_mode, connectors=cmd.connector_ids
        )
    return codec.dumps({
        "command_id": cmd.command_id,
        "action": cmd.action,
        "reason": cmd.reason,
        "station_id": cmd.station_id,
        "zone_id": cmd.zone_id,
        "target_power_kw": cmd.target_power_kw,
        "station_shed_kw": cmd.station_shed_kw,
        "signal_id": cmd.signal_id,
        "priority": cmd.priority,
        "dr_end_ts": iso(cmd.dr_end_ts),
        "command_ts": iso(cmd.command_ts),
        "connectors": [
            {
                "connector_id": c.connector_id,
                "connector_type": c.connector_type,
                "limit_kw": c.limit_kw,
                "limit_a": c.limit_a,
            }
            for c in cmd.connectors
        ],
        "ocpp": ocpp,
    })
