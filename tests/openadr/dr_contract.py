"""`grid.demand_response` as docs/architecture.md specifies it (one of three amounts),
written from the contract for these tests: the VEN's messages are checked against the
contract itself, not against evgrid's own input model."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AMOUNTS = ("target_reduction_kw", "target_reduction_pct", "cap_kw")


class DRContract(BaseModel):
    model_config = ConfigDict(strict=False, extra="forbid", allow_inf_nan=False)

    signal_id: str = Field(min_length=1)
    zone_id: str = Field(min_length=1)
    signal_type: Literal["CURTAIL", "SHED", "RESTORE"]
    target_reduction_kw: float | None = Field(default=None, ge=0)
    target_reduction_pct: float | None = Field(default=None, ge=0, le=100)
    cap_kw: float | None = Field(default=None, ge=0)
    start_ts: datetime
    end_ts: datetime
    priority: Literal[1, 2, 3]
    received_ts: datetime

    @model_validator(mode="after")
    def _rules(self) -> DRContract:
        given = [name for name in AMOUNTS if getattr(self, name) is not None]
        if len(given) > 1 or (not given and self.signal_type != "RESTORE"):
            raise ValueError(f"exactly one of {AMOUNTS} (except RESTORE), got {given}")
        for ts in (self.start_ts, self.end_ts, self.received_ts):
            if ts.tzinfo is None:
                raise ValueError("timestamps need an offset")
        if self.end_ts <= self.start_ts:
            raise ValueError("end_ts must be later than start_ts")
        return self
