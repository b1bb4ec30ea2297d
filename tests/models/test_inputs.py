"""Every bad-input class the contract lists is rejected with a readable reason; messages of
the documented shape are accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid import codec
from evgrid.codec import DecodeError
from evgrid.models import DemandResponseSignal, MeterValue, StationZone
from evgrid.models.inputs import METER_VALUE, meter_reading

SEED_METER = {
    "station_id": "ST-0001",
    "connector_id": 1,
    "session_id": "sess-42",
    "connector_type": "CCS",
    "power_kw": 148.2,
    "current_a": 370.5,
    "voltage_v": 400.0,
    "energy_kwh": 12.75,
    "soc_percent": 41,
    "event_ts": "2026-11-25T10:00:00Z",
}
SEED_DR = {
    "signal_id": "DR-1",
    "zone_id": "Z1",
    "signal_type": "CURTAIL",
    "target_reduction_kw": 500.0,
    "start_ts": "2026-11-25T10:00:00+01:00",
    "end_ts": "2026-11-25T11:00:00+01:00",
    "priority": 2,
    "received_ts": "2026-11-25T08:59:00Z",
}
SEED_ZONE = {
    "station_id": "ST-0001",
    "zone_id": "Z1",
    "max_station_kw": 300.0,
    "contract_max_kw": 250.0,
    "connector_max_kw": {"CCS": 150, "CHAdeMO": 50},
}


def raw(d: dict) -> bytes:
    return orjson.dumps(d)


def test_seed_meter_value_accepted_with_utc_datetime() -> None:
    mv = codec.decode(MeterValue, raw(SEED_METER))
    assert mv.event_ts == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert mv.power_kw == pytest.approx(148.2)


def test_ac_reading_without_soc_and_epoch_ms_timestamp() -> None:
    mv = codec.decode(
        MeterValue,
        raw({**SEED_METER, "connector_type": "Type2", "soc_percent": None,
             "event_ts": 1795600800000}),
    )
    assert mv.soc_percent is None
    assert mv.event_ts == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_dr_signal_offsets_normalised_to_utc() -> None:
    sig = codec.decode(DemandResponseSignal, raw(SEED_DR))
    assert sig.start_ts == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert sig.start_ts.tzinfo is UTC


def test_station_zone_accepted() -> None:
    sz = codec.decode(StationZone, raw(SEED_ZONE))
    assert sz.connector_max_kw == {"CCS": 150.0, "CHAdeMO": 50.0}
    assert sz.profile_mode == "station" and sz.stack_level == 1


BAD_METER = [
    (b"{not json", "not_json"),
    (b'{"power_kw": NaN}', "not_finite_number"),
    (b'{"power_kw": 1e999}', "not_finite_number"),
    (b"[1, 2, 3]", "not_object"),
    (b"", "empty"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (raw({k: v for k, v in SEED_METER.items() if k != "station_id"}), "station_id:missing"),
    (raw({**SEED_METER, "power_kw": "7.4"}), "power_kw:float_type"),
    (raw({**SEED_METER, "power_kw": -1.0}), "power_kw:greater_than_equal"),
    (raw({**SEED_METER, "soc_percent": 101}), "soc_percent:less_than_equal"),
    (raw({**SEED_METER, "soc_percent": -1}), "soc_percent:greater_than_equal"),
    (raw({**SEED_METER, "connector_type": "GB/T"}), "connector_type:literal_error"),
    (raw({**SEED_METER, "connector_id": 0}), "connector_id:greater_than_equal"),
    (raw({**SEED_METER, "connector_id": True}), "connector_id:int_type"),
    (raw({**SEED_METER, "event_ts": "yesterday"}), "event_ts:invalid_timestamp"),
    (raw({**SEED_METER, "event_ts": "2026-11-25T10:00:00"}), "event_ts:invalid_timestamp"),
    (raw({**SEED_METER, "energy_kwh": -0.5}), "energy_kwh:greater_than_equal"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_METER)
def test_bad_meter_values_rejected_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(MeterValue, payload)
    assert info.value.reason == reason
    assert len(info.value.error) > 5  # words for a human, not just a code


@pytest.mark.parametrize(("payload", "reason"), BAD_METER)
def test_the_input_path_rejects_bad_meter_values_with_the_models_reason(
        payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode_checked(METER_VALUE, payload, 1_000_000)
    assert info.value.reason == reason


@pytest.mark.parametrize("change", [
    {},
    {"event_ts": 1795600800000, "soc_percent": None, "connector_type": "Type2"},
    {"power_kw": 7, "current_a": 16, "voltage_v": 230},
    {"event_ts": "2026-11-25T11:30:00.123456+01:30"},
])
def test_the_input_path_takes_what_the_model_takes(change: dict) -> None:
    """The hand check where it applies, the model for the rest: the same reading."""
    payload = raw({**SEED_METER, **change})
    assert codec.decode_checked(METER_VALUE, payload, 1_000_000) == \
        codec.decode(MeterValue, payload).reading()


#: Values at and around every bound of the model, and of every type JSON gives.
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                          max_size=2),
)
EDGE_NUMBERS = [0.0, -0.0, -1e-300, -1.0, 5e-324, 1.0, 1e308, 0, 1, -1, 100, 101, 100.0,
                1024, 1025, 2**64]
NUMBERS = st.one_of(st.sampled_from(EDGE_NUMBERS), st.floats(-2.0, 2000.0),
                    st.integers(-2, 2000))
EDGE_TIMES = [
    "2026-11-25T10:00:00Z", "2026-11-25T10:00:00", "2026-11-25", "2026-11-25T10:00:00.5+05:30",
    "2026-11-25T10:00:00.123456-09:45", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00+00:00",
    "2100-01-01T00:00:00Z", "2100-01-01T00:00:00.001Z", "2099-12-31T23:59:59-23:59",
    "yesterday", "", 1795600800000, 946684800000, 946684799999, 1795600800000.5,
]
TIMES = st.sampled_from(EDGE_TIMES)
EDGE_TEXTS = ["", "a", "CCS", "CHAdeMO", "Type2", "ccs", "x" * 256, "x" * 257, "é" * 256,
              "é" * 257, "s1"]
TEXTS = st.sampled_from(EDGE_TEXTS)
FIELD = {
    "station_id": TEXTS, "session_id": TEXTS, "connector_type": TEXTS,
    "connector_id": NUMBERS, "power_kw": NUMBERS, "current_a": NUMBERS, "voltage_v": NUMBERS,
    "energy_kwh": NUMBERS, "soc_percent": NUMBERS, "event_ts": TIMES,
}
EDGE = {"station_id": EDGE_TEXTS, "session_id": EDGE_TEXTS, "connector_type": EDGE_TEXTS,
        "event_ts": EDGE_TIMES}


@pytest.mark.parametrize(("name", "value"), [
    (name, value) for name in FIELD for value in
    [None, True, "7", [1], *EDGE.get(name, EDGE_NUMBERS)]])
def test_the_meter_value_hand_check_at_each_bound(name: str, value: object) -> None:
    """Every bound of every field, one at a time: where the hand check accepts, the model
    accepts with the same reading (an out-of-range time would raise here, not refuse)."""
    data = {**SEED_METER, name: value}
    fast = meter_reading(data)
    if fast is not None:
        assert fast == MeterValue.model_validate(data).reading()


#: The seed with a few fields changed: left out, at a value of their kind, or at anything.
CHANGES = st.lists(st.one_of(*(
    st.tuples(st.just(name), st.one_of(st.just(None), values, ODD), st.booleans())
    for name, values in FIELD.items())), max_size=3)


def changed(changes: list[tuple[str, object, bool]]) -> dict:
    data = dict(SEED_METER)
    for name, value, dropped in changes:
        if dropped:
            data.pop(name, None)
        else:
            data[name] = value
    return data


@settings(max_examples=4000, deadline=None)
@given(CHANGES)
def test_the_meter_value_hand_check_accepts_only_what_the_model_accepts(changes: list) -> None:
    """`meter_reading` never accepts what `MeterValue` refuses, and where it accepts, it
    gives the model's own reading."""
    data = changed(changes)
    fast = meter_reading(data)
    if fast is None:
        return
    assert fast == MeterValue.model_validate(data).reading()


def test_the_meter_value_hand_check_takes_the_usual_form() -> None:
    assert meter_reading(SEED_METER) == MeterValue.model_validate(SEED_METER).reading()
    assert meter_reading({**SEED_METER, "session_id": None, "soc_percent": None}) is not None


def test_oversized_message_rejected_before_parsing() -> None:
    big = raw({**SEED_METER, "session_id": "x" * 2000})
    with pytest.raises(DecodeError) as info:
        codec.decode(MeterValue, big, max_bytes=1000)
    assert info.value.reason == "oversized"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"end_ts": "2026-11-25T09:00:00Z"}, "end_ts:not_after_start"),
        ({"end_ts": SEED_DR["start_ts"]}, "end_ts:not_after_start"),
        ({"signal_type": "PAUSE"}, "signal_type:literal_error"),
        ({"priority": 4}, "priority:literal_error"),
        ({"target_reduction_kw": -5}, "target_reduction_kw:greater_than_equal"),
    ],
)
def test_bad_dr_signals_rejected(change: dict, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(DemandResponseSignal, raw({**SEED_DR, **change}))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"max_station_kw": -1}, "max_station_kw:greater_than_equal"),
        ({"connector_max_kw": {"Tesla": 250}}, "connector_max_kw:literal_error"),
        ({"profile_mode": "evse"}, "profile_mode:string_pattern_mismatch"),
    ],
)
def test_bad_station_zones_rejected(change: dict, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(StationZone, raw({**SEED_ZONE, **change}))
    assert info.value.reason == reason


def test_raw_as_text_base64_for_binary_and_truncates() -> None:
    text, enc, cut = codec.raw_as_text(b"\xff\x00abc", 100)
    assert enc == "base64" and not cut
    text, enc, cut = codec.raw_as_text(b"a" * 50, 10)
    assert (text, enc, cut) == ("a" * 10, "utf-8", True)
