"""Message models: the wire contract of DESIGN.md, separate from any I/O."""

from evgrid.models.inputs import DemandResponseSignal, MeterValue, StationZone
from evgrid.models.outputs import (
    ChargingCommand,
    ComplianceAlert,
    ConnectorLimitOut,
    DeadLetter,
    DRStatus,
    OverloadAlert,
    ZoneLoadReport,
    zone_load_report,
)

__all__ = [
    "ChargingCommand",
    "ComplianceAlert",
    "ConnectorLimitOut",
    "DRStatus",
    "DeadLetter",
    "DemandResponseSignal",
    "MeterValue",
    "OverloadAlert",
    "StationZone",
    "ZoneLoadReport",
    "zone_load_report",
]
