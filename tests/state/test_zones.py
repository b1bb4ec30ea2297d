"""The zone store: a view of the station rows — members joined, moved and removed by their
rows, the control record written only on change, and the zones of a partition being read back
cold until it is loaded."""

from __future__ import annotations

from evgrid.core.types import ConnectorReading, StationConfig, Tunables
from evgrid.state.tables_io import partition_of
from evgrid.state.zones import ZoneStore
from tests.fakes import PARTITIONS, memory_tables

T0 = 1_800_000_000.0


def zones(tables=None) -> ZoneStore:
    return ZoneStore(tables or memory_tables(), Tunables(), PARTITIONS, "src")


def member(station_id: str, zone_id: str = "Z1", kw: float = 100.0) -> StationConfig:
    return StationConfig(station_id, zone_id, kw, kw)


def loads(kw: float, arrival_ts: float = T0) -> tuple[ConnectorReading, ...]:
    return (ConnectorReading(1, "CCS", kw, T0, "s", arrival_ts=arrival_ts),)


def zone_in_another_partition(zone_id: str) -> str:
    home = partition_of(zone_id, PARTITIONS)
    return next(z for z in (f"Z{i}" for i in range(100)) if partition_of(z, PARTITIONS) != home)


def zone_in_same_partition(zone_id: str) -> str:
    home = partition_of(zone_id, PARTITIONS)
    return next(z for z in (f"Z{i}" for i in range(100))
                if partition_of(z, PARTITIONS) == home and z != zone_id)


def test_a_row_makes_its_station_a_member_and_the_control_record_is_written_once() -> None:
    store = zones()
    zone, left = store.apply_row(member("S1"), loads(30.0), T0)
    assert left is None and zone.warm(T0) and zone.zone_id == "Z1"
    assert zone.partition == partition_of("Z1", PARTITIONS)
    written = store.tables.zone_control[b"Z1"]  # the zone exists from now on
    store.apply_row(member("S1"), loads(40.0), T0)  # its next row replaces the first
    store.apply_row(member("S2"), loads(10.0), T0)
    assert store.tables.zone_control[b"Z1"] is written  # nothing of the control changed
    assert set(zone.load.stations) == {"S1", "S2"}
    assert zone.load.total_kw(T0, 120.0) == 50.0
    assert store.member_of == {"S1": "Z1", "S2": "Z1"}
    store.apply_row(member("S1", kw=60.0), loads(40.0), T0)
    assert zone.load.stations["S1"].config.max_station_kw == 60.0  # new limits


def test_load_age_is_from_the_newest_reading_not_from_when_the_zone_side_got_it() -> None:
    store = zones()
    zone, _ = store.apply_row(member("S1"), (), T0)
    assert zone.load_age_s(T0) is None
    # A zone side 15 s behind its input: the picture is 15 s old when it is applied.
    store.apply_row(member("S1"), (ConnectorReading(1, "CCS", 30.0, T0 - 20, "s",
                                                    arrival_ts=T0 - 15),), T0)
    assert zone.load_age_s(T0) == 15.0
    # An older reading of another station does not make the picture look older.
    store.apply_row(member("S2"), (ConnectorReading(1, "CCS", 30.0, T0 - 40, "s",
                                                    arrival_ts=T0 - 30),), T0 + 1)
    assert zone.load_age_s(T0 + 1) == 16.0


def test_a_row_naming_another_zone_of_the_same_partition_moves_the_station() -> None:
    store = zones()
    other = zone_in_same_partition("Z1")
    old, _ = store.apply_row(member("S1"), loads(30.0), T0)
    new, left = store.apply_row(member("S1", other), loads(30.0), T0)
    assert left is old and set(old.load.stations) == set()
    assert set(new.load.stations) == {"S1"} and store.member_of["S1"] == other
    assert store.remove("S1", new.partition) is new  # its tombstone, in that partition
    assert set(new.load.stations) == set() and "S1" not in store.member_of
    assert store.remove("S1", new.partition) is None  # twice: nothing more


def test_a_tombstone_of_the_old_partition_read_after_the_move_changes_nothing() -> None:
    """The row in the new zone's partition and the tombstone in the old one's are read in
    either order: a tombstone only removes the station from a zone of its own partition."""
    store = zones()
    other = zone_in_another_partition("Z1")
    old, _ = store.apply_row(member("S1"), loads(30.0), T0)
    new, left = store.apply_row(member("S1", other), loads(30.0), T0)  # the row first
    assert left is old and set(old.load.stations) == set()
    assert store.remove("S1", old.partition) is None  # then the old partition's tombstone
    assert set(new.load.stations) == {"S1"} and store.member_of["S1"] == other

    in_order = zones()  # the tombstone first: it leaves, then joins
    old, _ = in_order.apply_row(member("S1"), loads(30.0), T0)
    assert in_order.remove("S1", old.partition) is old
    new, left = in_order.apply_row(member("S1", other), loads(30.0), T0)
    assert left is None and set(new.load.stations) == {"S1"}
    assert set(old.load.stations) == set()


def test_a_partition_new_to_the_owner_is_cold_until_loaded() -> None:
    tables = memory_tables()
    first = zones(tables)
    zone, _ = first.apply_row(member("S1"), loads(10.0), T0)
    partition = zone.partition

    second = zones(tables)  # the new owner after a rebalance
    second.keep_only({partition}, T0 + 100)
    assert second.loading == {partition}
    reloaded = second.zones["Z1"]  # it has control state: loaded at once, but cold
    assert not reloaded.warm(T0 + 100) and reloaded.load.stations == {}
    second.apply_row(member("S1"), loads(10.0), T0 + 101)  # the rows read back
    assert not reloaded.warm(T0 + 101)
    fresh = zone_in_same_partition("Z1")  # a zone first heard of while reading back
    created, _ = second.apply_row(member("S2", fresh), loads(20.0), T0 + 101)
    assert not created.warm(T0 + 101)
    warmed = second.loaded(partition)
    assert {z.zone_id for z in warmed} == {"Z1", fresh}
    assert reloaded.warm(T0 + 102) and created.warm(T0 + 102)
    assert second.loading == set() and second.loaded(partition) == []
    assert set(reloaded.load.stations) == {"S1"}


def test_a_kept_partition_stays_warm_and_zones_not_owned_are_dropped_with_members() -> None:
    store = zones()
    zone, _ = store.apply_row(member("S1"), loads(10.0), T0)
    store.keep_only({zone.partition}, T0)
    store.loaded(zone.partition)
    gained = (zone.partition + 1) % PARTITIONS
    store.keep_only({zone.partition, gained}, T0 + 1)
    assert store.loading == {gained}  # only the partition new to this owner is read back
    assert zone.warm(T0 + 1) and store.zones["Z1"] is zone
    assert store.keep_only({gained}, T0 + 2) == {"Z1"}  # a rebalance before it was read back
    assert "Z1" not in store.zones and "S1" not in store.member_of
    assert store.loading == {gained}
    store.keep_only({gained, zone.partition}, T0 + 3)  # and back: read again, cold
    assert store.loading == {gained, zone.partition}
    assert not store.zones["Z1"].warm(T0 + 3)


def test_a_restored_activation_keeps_its_program_until_the_programs_are_read_back() -> None:
    from evgrid.core.frequency.program import LINEAR, FrequencyProgram

    program = FrequencyProgram(zone_id="Z1", area_id="A", product=LINEAR, committed_kw=50.0,
                               start_hz=49.9, full_hz=49.5)
    first = zones()
    first.programs["Z1"] = program
    zone, _left = first.apply_row(member("S1"), loads(100.0, T0), T0)
    zone.controller.on_frequency(49.5, T0, zone.load.stations, T0)
    assert zone.controller.freq.active
    first.persist(zone)
    restarted = zones(first.tables)  # a new worker on the same tables, no program read yet
    restored = restarted.zone("Z1", T0 + 1)
    assert restored.controller.freq.active and restored.controller.freq.program == program
    restarted.programs["Z1"] = program  # then read back: the same program, nothing changes
    assert restarted.zone("Z1", T0 + 1).controller.freq.active
