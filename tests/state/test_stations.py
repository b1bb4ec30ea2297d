"""The station store: write-behind checkpoints, partitions loaded and dropped, retention."""

from __future__ import annotations

from evgrid.core.types import ConnectorReading, StationConfig, Tunables
from evgrid.state.codecs import STATION_CHECKPOINT, STATION_CONFIG, WINDOW_STATS
from evgrid.state.stations import StationStore
from evgrid.state.tables_io import partition_of
from tests.fakes import PARTITIONS, memory_tables

T0 = 1_800_000_000.0


def store(tables=None, **tunables: float) -> StationStore:
    return StationStore(tables or memory_tables(), Tunables(**tunables), PARTITIONS, "src")


def reading(kw: float, ts: float, connector_id: int = 1) -> ConnectorReading:
    return ConnectorReading(connector_id, "CCS", kw, ts, "s")


def apply(st: StationStore, station_id: str, kw: float, ts: float) -> None:
    entry = st.entry(station_id, partition_of(station_id, PARTITIONS))
    assert entry.state.apply(reading(kw, ts))
    st.touched(entry)


def test_checkpoint_writes_each_dirty_station_once_and_only_when_dirty() -> None:
    st = store()
    for i in range(10):
        apply(st, "S1", 10.0 + i, T0 + i)
    apply(st, "S2", 5.0, T0)
    assert st.tables.station_state == {}  # write-behind: nothing before the checkpoint
    assert st.checkpoint() == 2
    held = STATION_CHECKPOINT.loads(st.tables.station_state[b"S1"])
    assert held.state.connectors[1].power_kw == 19.0
    assert st.checkpoint() == 0  # nothing changed since


def test_a_partition_reloads_from_its_checkpoints_and_configs_and_drops_cleanly() -> None:
    tables = memory_tables()
    first = store(tables)
    apply(first, "S1", 42.0, T0)
    partition = partition_of("S1", PARTITIONS)
    tables.station_config[b"S1"] = STATION_CONFIG.dumps(StationConfig("S1", "Z1", 100, 100))
    first.checkpoint()

    second = store(tables)  # another worker (or this one after a restart)
    second.load_partition(partition)
    entry = second.get("S1")
    assert entry is not None and entry.state.connectors[1].power_kw == 42.0
    assert entry.config == StationConfig("S1", "Z1", 100, 100)
    other = next(p for p in range(PARTITIONS) if p != partition)
    second.load_partition(other)
    assert second.owned_partitions() == {partition, other}
    second.drop_partition(partition)
    assert second.get("S1") is None and second.owned_partitions() == {other}


def test_closed_windows_are_written_as_they_close() -> None:
    st = store(window_s=60.0, allowed_lateness_s=0.0)
    entry = st.entry("S1", partition_of("S1", PARTITIONS))
    entry.state = type(entry.state)(window_s=60.0, allowed_lateness_s=0.0)
    for ts in (T0, T0 + 30, T0 + 61, T0 + 125):
        entry.state.apply(reading(20.0, ts))
        st.persist_closed_windows(entry)
    stats = WINDOW_STATS.loads(st.tables.station_windows[b"S1"])
    assert [w.window_end for w in stats] == [w.window_end for w in entry.state.windows.closed]
    assert len(stats) >= 1


def test_idle_connectors_are_forgotten_and_an_empty_unmapped_station_removed() -> None:
    st = store(connector_forget_s=3600.0)
    apply(st, "S1", 10.0, T0)
    apply(st, "S2", 10.0, T0 + 3000)
    st.checkpoint()
    assert b"S1" in st.tables.station_state
    assert st.forget_idle(T0 + 3700) == 1
    assert st.get("S1") is None and b"S1" not in st.tables.station_state
    assert st.get("S2") is not None
