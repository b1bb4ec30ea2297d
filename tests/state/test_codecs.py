"""Table codecs: typed round trips, and a clear refusal of versions this evgrid cannot read."""

from __future__ import annotations

import orjson
import pytest

from evgrid.core.overload import HysteresisAlarm
from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading, StationConfig
from evgrid.state.codecs import (
    STATION_CHECKPOINT,
    STATION_CONFIG,
    ZONE_CONTROL,
    StateVersionError,
    StationCheckpoint,
    ZoneControlRecord,
)


def test_station_checkpoint_round_trips_readings_windows_and_alarm() -> None:
    state = StationState()
    for i in range(5):
        state.apply(ConnectorReading(1, "CCS", 40.0 + i, 1_800_000_000.0 + 20 * i, "s1"))
    state.apply(ConnectorReading(2, "Type2", 11.0, 1_800_000_050.0, None))
    alarm = HysteresisAlarm(hysteresis_pct=2.0, active=True, since=1.0, peak=55.0)
    raw = STATION_CHECKPOINT.dumps(StationCheckpoint(state, alarm))
    back = STATION_CHECKPOINT.loads(raw)
    assert back.state.connectors == state.connectors
    assert back.state.windows.snapshot() == state.windows.snapshot()
    assert back.alarm == alarm
    assert orjson.loads(raw)["v"] == 1


def test_config_and_zone_control_round_trip() -> None:
    config = StationConfig("S1", "Z1", 150.0, 120.0, {"CCS": 150.0}, "connector", 2)
    assert STATION_CONFIG.loads(STATION_CONFIG.dumps(config)) == config
    record = ZoneControlRecord({"zone_id": "Z1"}, HysteresisAlarm())
    assert ZONE_CONTROL.loads(ZONE_CONTROL.dumps(record)) == record


@pytest.mark.parametrize("raw", [b'{"v": 2, "state": {}}', b'{"state": {}}', b"[1, 2]"])
def test_an_unknown_version_refuses_to_load_and_says_what_to_do(raw: bytes) -> None:
    with pytest.raises(StateVersionError, match=r"station-state.*version 1.*data dir"):
        STATION_CHECKPOINT.loads(raw)
