"""Message models: the wire contract of DESIGN.md, separate from any I/O."""

from evgrid.models.gateway import CommandOutcome, StationStatus
from evgrid.models.inputs import DemandResponseSignal, MeterValue, StationZone
from evgrid.models.outputs import (
    ChargingCommand,
    ComplianceAlert,
    ConnectorLimitOut,
    DeadLetter,
    DRStatus,
    OverloadAlert,
)

__all__ = [
    "ChargingCommand",
    "CommandOutcome",
    "ComplianceAlert",
    "ConnectorLimitOut",
    "DRStatus",
    "DeadLetter",
    "DemandResponseSignal",
    "MeterValue",
    "OverloadAlert",
    "StationStatus",
    "StationZone",
]
