"""`grid.demand_response` says how much in exactly one of three ways (none only for RESTORE)."""

from __future__ import annotations

import orjson
import pytest

from evgrid import codec
from evgrid.codec import DecodeError
from evgrid.models import DemandResponseSignal, dr_signal_from_model

BASE = {
    "signal_id": "DR-1",
    "zone_id": "Z1",
    "signal_type": "CURTAIL",
    "start_ts": "2026-11-25T10:00:00Z",
    "end_ts": "2026-11-25T11:00:00Z",
    "priority": 2,
    "received_ts": "2026-11-25T09:59:00Z",
}


def decode(**fields: object) -> DemandResponseSignal:
    return codec.decode(DemandResponseSignal, orjson.dumps({**BASE, **fields}))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"target_reduction_kw": 40.0}, (40.0, None, None)),
        ({"target_reduction_pct": 25}, (None, 25.0, None)),
        ({"target_reduction_pct": 100.0}, (None, 100.0, None)),
        ({"cap_kw": 0.0}, (None, None, 0.0)),
        ({"signal_type": "RESTORE"}, (None, None, None)),
        ({"signal_type": "RESTORE", "cap_kw": 10.0}, (None, None, 10.0)),
    ],
)
def test_each_form_accepted_and_built_into_the_core_signal(
    fields: dict, expected: tuple
) -> None:
    sig = decode(**fields)
    core = dr_signal_from_model(sig)
    assert (core.target_reduction_kw, core.target_reduction_pct, core.cap_kw) == expected
    assert core.start_ts == sig.start_ts.timestamp() and core.signal_id == "DR-1"
    assert core.received_ts == sig.received_ts.timestamp() and core.priority == 2


@pytest.mark.parametrize(
    ("fields", "reason", "words"),
    [
        ({"target_reduction_kw": 40.0, "cap_kw": 100.0}, "target:two_forms",
         "target_reduction_kw, cap_kw"),
        ({"target_reduction_pct": 10.0, "cap_kw": 100.0, "target_reduction_kw": 1.0},
         "target:two_forms", "exactly one"),
        ({}, "target:missing", "CURTAIL needs one of"),
        ({"signal_type": "SHED"}, "target:missing", "SHED needs one of"),
        ({"target_reduction_kw": -1.0}, "target_reduction_kw:greater_than_equal", ">= 0"),
        ({"target_reduction_pct": -0.5}, "target_reduction_pct:greater_than_equal", ""),
        ({"target_reduction_pct": 100.5}, "target_reduction_pct:less_than_equal", "100"),
        ({"cap_kw": -3.0}, "cap_kw:greater_than_equal", ""),
        ({"signal_type": "RESTORE", "cap_kw": 1.0, "target_reduction_pct": 5.0},
         "target:two_forms", ""),
    ],
)
def test_bad_targets_dead_lettered_with_clear_reasons(
    fields: dict, reason: str, words: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(**fields)
    assert info.value.reason == reason
    assert words in info.value.error.replace("greater than or equal to", ">=")
    if reason.startswith("target:"):
        assert info.value.error.startswith("target: ")


def test_nan_percentage_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        codec.validate(DemandResponseSignal, {**BASE, "target_reduction_pct": float("nan")})
    assert info.value.reason.startswith("target_reduction_pct:")
