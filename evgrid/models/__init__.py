"""Message models: the wire contract (docs/architecture.md), separate from any I/O."""

from evgrid.models.gateway import CommandOutcome, StationStatus
from evgrid.models.inputs import DemandResponseSignal, MeterValue, StationZone
from evgrid.models.outputs import (
    ChargingCommand,
    ComplianceAlert,
    ConnectorLimitOut,
    DeadLetter,
    DRReport,
    DRStatus,
    OverloadAlert,
    SignalRefusedAlert,
    StationAlert,
    StationWindow,
    ZoneLoadReport,
    dr_report_message,
    station_window,
    zone_load_report,
)
from evgrid.models.signals import dr_signal_from_model

__all__ = [
    "ChargingCommand",
    "CommandOutcome",
    "ComplianceAlert",
    "ConnectorLimitOut",
    "DRReport",
    "DRStatus",
    "DeadLetter",
    "DemandResponseSignal",
    "MeterValue",
    "OverloadAlert",
    "SignalRefusedAlert",
    "StationAlert",
    "StationStatus",
    "StationWindow",
    "StationZone",
    "ZoneLoadReport",
    "dr_report_message",
    "dr_signal_from_model",
    "station_window",
    "zone_load_report",
]
