"""DR control for one zone, split by concern:

- `demand`     — uncurtailed demand, floors and ceilings per station
- `diff`       — which stations get a new command (dead band)
- `commands`   — `Command`, `command_id`, `profile_id_for`, what a station was told
- `sites`      — which of the zone's sites are limited, their demands and views
- `status`     — `grid.dr_status` and `alerts.dr.compliance` bodies, the controller's view
- `decisions`  — what a step returns to the agent
- `state`      — the persisted layout
- `controller` — `ZoneController`, orchestrating them
"""

from evgrid.core.control.commands import Command, command_id, profile_id_for
from evgrid.core.control.controller import ACCEPTED, SUPERSEDED, ZoneController
from evgrid.core.control.decisions import Decisions, RefusedSignal

__all__ = [
    "ACCEPTED",
    "SUPERSEDED",
    "Command",
    "Decisions",
    "RefusedSignal",
    "ZoneController",
    "command_id",
    "profile_id_for",
]
