"""Rows of one station in two zones' partitions are read back in no particular order: the row
of the newer mapping decides where the station is, whichever partition is read first."""

from __future__ import annotations

import time

from evgrid.runtime import Runtime
from evgrid.state.tables_io import partition_of
from tests.fakes import PARTITIONS
from tests.handlers.test_zone_and_dr import World, zone_elsewhere


def read_back(first: World, order: list[int]) -> World:
    """A new owner of the given partitions reads their rows back, one partition after the
    other, each warming when read."""
    second = World(first.tables)
    second.zones.keep_only(set(order), time.time())
    for partition in order:
        for row in first.log:
            if row.partition == partition:
                second.inputs.dispatch(row)
        Runtime.zone_partition_loaded(second, partition)  # type: ignore[arg-type]
    return second


def test_an_old_row_read_after_the_move_changes_nothing() -> None:
    old, new = "Z1", zone_elsewhere("Z1")
    p_old, p_new = partition_of(old, PARTITIONS), partition_of(new, PARTITIONS)
    first = World()
    first.map("S1", old, 40.0)
    first.map("S1", new, 40.0)  # moved: tombstone in the old partition, row in the new
    first.map("S2", new, 40.0)
    first.signal(new, 40.0)
    assert set(first.commands()) == {"S1", "S2"}
    second = read_back(first, [p_new, p_old])
    assert second.zones.member_of.get("S1") == new
    assert [a for a in second.actions() if a[1] == "CLEAR"] == []


def test_a_station_moved_there_and_back_stays_where_it_came_back_to() -> None:
    home, away = "Z1", zone_elsewhere("Z1")
    p_home, p_away = partition_of(home, PARTITIONS), partition_of(away, PARTITIONS)
    first = World()
    first.map("S1", home, 40.0)
    first.map("S1", away, 40.0)
    first.map("S1", home, 40.0)
    second = read_back(first, [p_home, p_away])
    assert second.zones.member_of.get("S1") == home
    assert "S1" in second.zones.zones[home].load.stations
