"""The zone store: members persisted on change, and a zone loaded after a rebalance stays cold
until every member has reported (or the warm-up has passed)."""

from __future__ import annotations

from evgrid.core.types import ConnectorReading, StationConfig, Tunables
from evgrid.state.zones import ZoneStore
from tests.fakes import PARTITIONS, memory_tables

T0 = 1_800_000_000.0


def zones(tables=None, warmup_s: float = 30.0) -> ZoneStore:
    return ZoneStore(tables or memory_tables(), Tunables(), PARTITIONS, "src", warmup_s)


def member(station_id: str) -> StationConfig:
    return StationConfig(station_id, "Z1", 100.0, 100.0)


def loads(kw: float) -> tuple[ConnectorReading, ...]:
    return (ConnectorReading(1, "CCS", kw, T0, "s"),)


def test_a_new_zone_is_warm_and_persists_membership_only_on_change() -> None:
    store = zones()
    zone = store.zone("Z1", T0)
    assert zone.warm(T0)
    assert store.join(zone, member("S1"), T0) is True
    written = store.tables.zone_control[b"Z1"]
    member_row = store.tables.zone_stations[b"Z1|S1"]
    assert store.join(zone, member("S1"), T0) is False  # same limits: nothing rewritten
    assert store.join(zone, member("S2"), T0) is True  # a member is a row of its own...
    assert store.tables.zone_stations[b"Z1|S1"] is member_row
    assert store.tables.zone_control[b"Z1"] is written  # ...the control record is untouched
    assert store.update_loads(zone, "S1", loads(30.0), T0)
    assert not store.update_loads(zone, "unknown", loads(30.0), T0)
    assert zone.load.total_kw(T0, 120.0) == 30.0


def test_load_age_is_from_the_newest_reading_not_from_when_the_zone_side_got_it() -> None:
    store = zones()
    zone = store.zone("Z1", T0)
    store.join(zone, member("S1"), T0)
    store.join(zone, member("S2"), T0)
    assert zone.load_age_s(T0) is None
    # A zone side 15 s behind its input: the picture is 15 s old when it is applied.
    store.update_loads(zone, "S1", (ConnectorReading(1, "CCS", 30.0, T0 - 20, "s",
                                                     arrival_ts=T0 - 15),), T0)
    assert zone.load_age_s(T0) == 15.0
    # An older reading of another station does not make the picture look older.
    store.update_loads(zone, "S2", (ConnectorReading(1, "CCS", 30.0, T0 - 40, "s",
                                                     arrival_ts=T0 - 30),), T0 + 1)
    assert zone.load_age_s(T0 + 1) == 16.0


def test_a_reloaded_zone_is_cold_until_every_member_reported() -> None:
    tables = memory_tables()
    first = zones(tables)
    zone = first.zone("Z1", T0)
    for station_id in ("S1", "S2"):
        first.join(zone, member(station_id), T0)

    second = zones(tables)  # the new owner after a rebalance
    second.keep_only({zone.partition}, T0 + 100)
    reloaded = second.zones["Z1"]
    assert set(reloaded.load.stations) == {"S1", "S2"}
    assert not reloaded.warm(T0 + 100)
    second.update_loads(reloaded, "S1", loads(10.0), T0 + 101)
    assert not reloaded.warm(T0 + 101)
    second.update_loads(reloaded, "S2", loads(20.0), T0 + 102)
    assert reloaded.warm(T0 + 102)


def test_a_cold_zone_warms_up_after_the_timeout_and_zones_not_owned_are_dropped() -> None:
    tables = memory_tables()
    first = zones(tables, warmup_s=5.0)
    zone = first.zone("Z1", T0)
    first.join(zone, member("S1"), T0)
    second = zones(tables, warmup_s=5.0)
    second.keep_only({zone.partition}, T0)
    assert not second.zones["Z1"].warm(T0 + 4.9)
    assert second.zones["Z1"].warm(T0 + 5.0)
    second.keep_only(set(range(PARTITIONS)) - {zone.partition}, T0 + 6)
    assert "Z1" not in second.zones
