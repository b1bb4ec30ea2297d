"""Did a commanded station bring its load under its target?

Chargers take 10–30 s to apply a limit and EVs may overshoot briefly, so a station is only
non-compliant after staying above target + tolerance for longer than a grace period.
"""

from __future__ import annotations

from dataclasses import dataclass

NONCOMPLIANT, COMPLIANT = "NONCOMPLIANT", "COMPLIANT"


@dataclass(slots=True)
class StationCompliance:
    target_kw: float
    commanded_at: float
    over_since: float | None = None
    noncompliant: bool = False
    noncompliant_since: float | None = None

    def retarget(self, target_kw: float, now: float) -> None:
        """A new command: the station gets a fresh grace to apply it."""
        self.target_kw = target_kw
        self.commanded_at = now
        self.over_since = None

    def tolerance_kw(self, pct: float, floor_kw: float) -> float:
        return max(self.target_kw * pct / 100.0, floor_kw)

    def evaluate(
        self, load_kw: float, now: float, pct: float, tol_kw: float, grace_s: float
    ) -> str | None:
        """Returns NONCOMPLIANT or COMPLIANT when the station's standing changes."""
        if load_kw > self.target_kw + self.tolerance_kw(pct, tol_kw):
            if self.over_since is None:
                self.over_since = max(now, self.commanded_at)
            if not self.noncompliant and now - self.over_since > grace_s:
                self.noncompliant = True
                self.noncompliant_since = self.over_since
                return NONCOMPLIANT
            return None
        self.over_since = None
        if self.noncompliant:
            self.noncompliant = False
            self.noncompliant_since = None
            return COMPLIANT
        return None

    def to_dict(self) -> dict:
        # Spelled out: `asdict` deep-copies field by field, and a zone writes one per station.
        return {"target_kw": self.target_kw, "commanded_at": self.commanded_at,
                "over_since": self.over_since, "noncompliant": self.noncompliant,
                "noncompliant_since": self.noncompliant_since}

    @classmethod
    def from_dict(cls, d: dict) -> StationCompliance:
        return cls(**d)
