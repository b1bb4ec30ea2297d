"""A station's compliance state round-trips whole through its plain-data form."""

from __future__ import annotations

from dataclasses import fields

from evgrid.core.compliance import StationCompliance


def test_to_dict_carries_every_field_and_round_trips() -> None:
    comp = StationCompliance(target_kw=42.5, commanded_at=1_800_000_000.0,
                             over_since=1_800_000_010.0, noncompliant=True,
                             noncompliant_since=1_800_000_040.0)
    d = comp.to_dict()
    assert set(d) == {f.name for f in fields(StationCompliance)}
    assert StationCompliance.from_dict(d) == comp
