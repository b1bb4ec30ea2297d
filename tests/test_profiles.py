"""Every OCPP payload evgrid can emit validates against the official schemas, with the `ocpp`
library's own validator (which handles 1.6's `multipleOf: 0.1` limits exactly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.messages import Call, _validate_payload

from evgrid import codec
from evgrid.commands import command_json
from evgrid.core.allocator import ConnectorLimit
from evgrid.core.control import Command
from evgrid.models import ChargingCommand
from evgrid.profiles import (
    clear_profile_payloads,
    profile_id_for,
    set_profile_payloads,
    station_profile_json,
)

START = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
END = START + timedelta(minutes=45)
CONNECTORS = (
    ConnectorLimit(1, "CCS", 61.37, None),
    ConnectorLimit(2, "CHAdeMO", 20.0, None),
    ConnectorLimit(3, "Type2", 7.4, 10.7),
)


def validate(version: str, messages: list[dict]) -> None:
    for n, m in enumerate(messages):
        payload = orjson.loads(orjson.dumps(m["payload"]))  # exactly what goes on the wire
        _validate_payload(Call(unique_id=str(n), action=m["action"], payload=payload), version)


@pytest.mark.parametrize("mode", ["station", "connector"])
@pytest.mark.parametrize("stack_level", [0, 1, 3])
def test_set_payloads_valid_in_both_versions(mode: str, stack_level: int) -> None:
    out = set_profile_payloads(
        profile_id=profile_id_for("DR-1", "ST-1"), stack_level=stack_level, mode=mode,
        station_limit_kw=88.77, connectors=CONNECTORS, valid_from=START, valid_to=END,
    )
    assert set(out) == {"1.6", "2.0.1"}
    validate("1.6", out["1.6"])
    validate("2.0.1", out["2.0.1"])
    expected = 1 if mode == "station" else len(CONNECTORS)
    assert len(out["1.6"]) == len(out["2.0.1"]) == expected
    for m in out["1.6"]:
        profile = m["payload"]["csChargingProfiles"]
        assert profile["validTo"] == "2026-11-25T17:45:00.000Z"
        assert profile["chargingProfilePurpose"] != "TxProfile"
        limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        assert round(limit, 1) == limit
    for m in out["2.0.1"]:
        assert m["payload"]["chargingProfile"]["validTo"] == "2026-11-25T17:45:00.000Z"


def test_station_mode_is_station_wide_max_profile() -> None:
    out = set_profile_payloads(
        profile_id=7, stack_level=1, mode="station", station_limit_kw=88.77,
        connectors=CONNECTORS, valid_from=START, valid_to=END,
    )
    p16 = out["1.6"][0]["payload"]
    assert p16["connectorId"] == 0
    assert p16["csChargingProfiles"]["chargingProfilePurpose"] == "ChargePointMaxProfile"
    period = p16["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert period["limit"] == 88770.0  # W, never rounded up
    p201 = out["2.0.1"][0]["payload"]
    assert p201["evseId"] == 0
    assert p201["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"


def test_connector_mode_ac_in_amps() -> None:
    out = set_profile_payloads(
        profile_id=7, stack_level=1, mode="connector", station_limit_kw=88.77,
        connectors=CONNECTORS, valid_from=START, valid_to=END,
    )
    ac = out["1.6"][2]["payload"]
    sched = ac["csChargingProfiles"]["chargingSchedule"]
    assert ac["connectorId"] == 3 and sched["chargingRateUnit"] == "A"
    assert sched["chargingSchedulePeriod"][0] == {"startPeriod": 0, "limit": 10.7,
                                                  "numberPhases": 3}


@pytest.mark.parametrize("mode", ["station", "connector"])
def test_clear_payloads_valid(mode: str) -> None:
    out = clear_profile_payloads(profile_id=42, mode=mode, connectors=[1, 2, 3])
    validate("1.6", out["1.6"])
    validate("2.0.1", out["2.0.1"])


def test_profile_ids_stable_and_in_range() -> None:
    a = profile_id_for("DR-1", "ST-1")
    assert a == profile_id_for("DR-1", "ST-1")
    assert a != profile_id_for("DR-2", "ST-1")
    ids = [profile_id_for(f"DR-{i}", f"ST-{i}") for i in range(2000)]
    assert all(i >= 1 and i + 16 <= 2**31 - 1 for i in ids)


@pytest.mark.parametrize("action", ["SET", "CLEAR"])
@pytest.mark.parametrize("mode", ["station", "connector"])
def test_command_message_is_a_valid_charging_command(action: str, mode: str) -> None:
    cmd = Command(
        station_id="ST-1", zone_id="Z1", action=action,
        target_power_kw=88.77 if action == "SET" else None, station_shed_kw=30.0,
        signal_id="DR-1", priority=2, dr_end_ts=END.timestamp(),
        command_ts=START.timestamp(), connectors=CONNECTORS if action == "SET" else (),
        profile_id=99, profile_mode=mode, stack_level=1, seq=1, command_id="abc",
        connector_ids=(1, 2, 3) if action == "CLEAR" else (),
    )
    message = ChargingCommand.model_validate_json(command_json(cmd))
    # What goes on the wire is exactly the model's JSON.
    assert command_json(cmd) == codec.dumps(message)
    validate("1.6", message.ocpp["1.6"])
    validate("2.0.1", message.ocpp["2.0.1"])
    assert message.dr_end_ts == END


@given(
    profile_id=st.integers(1, 2**31 - 1 - 1024),
    stack_level=st.integers(0, 99),
    limit_kw=st.floats(0.0, 1e6, allow_nan=False),
    valid_from=st.floats(0.0, 4e9, allow_nan=False),
    duration_s=st.floats(0.0, 1e6, allow_nan=False),
)
def test_a_written_station_profile_is_its_payloads_written(
    profile_id: int, stack_level: int, limit_kw: float, valid_from: float, duration_s: float,
) -> None:
    """The station-wide profile put into a decision's written template is, byte for byte,
    its payloads as `codec.dumps` writes them."""
    written = station_profile_json(
        profile_id=profile_id, stack_level=stack_level, station_limit_kw=limit_kw,
        valid_from=valid_from, valid_to=valid_from + duration_s)
    payloads = set_profile_payloads(
        profile_id=profile_id, stack_level=stack_level, mode="station",
        station_limit_kw=limit_kw, connectors=(), valid_from=valid_from,
        valid_to=valid_from + duration_s)
    assert codec.dumps({"ocpp": written}) == codec.dumps({"ocpp": payloads})


def test_the_validator_rejects_a_broken_payload() -> None:
    out = set_profile_payloads(
        profile_id=7, stack_level=1, mode="station", station_limit_kw=10.0,
        connectors=CONNECTORS, valid_from=START, valid_to=END,
    )
    broken = out["1.6"][0]
    del broken["payload"]["csChargingProfiles"]["chargingProfileKind"]
    with pytest.raises(Exception, match="chargingProfileKind"):
        validate("1.6", [broken])
