"""Wire model → core: the one place a `grid.demand_response` message becomes a `DRSignal`."""

from __future__ import annotations

from evgrid.core.lifecycle import DRSignal
from evgrid.models.inputs import DemandResponseSignal


def dr_signal_from_model(sig: DemandResponseSignal) -> DRSignal:
    """Times to epoch seconds; the target form passes through as given (the core resolves it
    against the baseline at activation)."""
    return DRSignal(
        signal_id=sig.signal_id,
        zone_id=sig.zone_id,
        signal_type=sig.signal_type,
        target_reduction_kw=sig.target_reduction_kw,
        start_ts=sig.start_ts.timestamp(),
        end_ts=sig.end_ts.timestamp(),
        priority=sig.priority,
        received_ts=sig.received_ts.timestamp(),
        target_reduction_pct=sig.target_reduction_pct,
        cap_kw=sig.cap_kw,
    )
