"""A curtailed zone that learns of a member drawing power asks for a step at once: the new
member gets its share at the clock's next turn, not at the next periodic step."""

from __future__ import annotations

from evgrid.core.control import ZoneController
from evgrid.core.lifecycle import DRSignal
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables

T0 = 1_800_000_000.0


def row(station_id: str, kw: float, now: float) -> StationRow:
    return StationRow(StationConfig(station_id, "Z1", 150.0, 150.0),
                      (ConnectorReading(1, "CCS", kw, now - 1, "s" if kw else None),))


def test_a_new_member_drawing_in_a_curtailed_zone_wakes_it() -> None:
    ctl = ZoneController("Z1", Tunables())
    stations = {f"S{i}": row(f"S{i}", 50.0, T0) for i in range(3)}
    ctl.note_row(row("S9", 50.0, T0), T0)
    assert ctl.wake_at is None  # nothing curtailed: nothing to re-decide
    sig = DRSignal("E1", "Z1", "CURTAIL", 30.0, T0, T0 + 600, 2, T0)
    d = ctl.on_signal(sig, stations, T0)
    assert {c.station_id for c in d.commands} == set(stations)
    ctl.note_row(row("S0", 40.0, T0 + 0.1), T0 + 0.1)  # a known member's new reading
    ctl.note_row(row("S8", 0.0, T0 + 0.1), T0 + 0.1)  # a new member drawing nothing
    assert ctl.wake_at is None
    stations["S9"] = row("S9", 50.0, T0 + 0.2)
    ctl.note_row(stations["S9"], T0 + 0.2)  # a new member drawing: due at once
    assert ctl.next_deadline(T0 + 0.2) == T0 + 0.2
    d = ctl.on_tick(stations, T0 + 0.2)
    assert "S9" in {c.station_id for c in d.commands}
    ctl.note_row(stations["S9"], T0 + 0.3)  # held now: no more wakes
    assert ctl.wake_at is None
