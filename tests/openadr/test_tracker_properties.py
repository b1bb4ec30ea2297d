"""Whatever the VTN sends, in whatever order: every message keeps the contract, a
re-delivery publishes nothing, and once the VTN holds no events every zone that was told of
an event has been told RESTORE last (nothing is left curtailed by a forgotten event)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evgrid.openadr.mapping import TargetMap
from evgrid.openadr.signals import Levels
from evgrid.openadr.tracker import EventTracker
from tests.openadr.dr_contract import DRContract
from tests.openadr.events import T0, event

TARGETS = [[{"ven_id": "ven-1"}], [{"group_id": "g"}], [{"party_id": "nobody"}],
           [{"group_id": "g"}, {"ven_id": "ven-1"}]]
SIGNALS = [("SIMPLE", "level", (1, 3)), ("LOAD_DISPATCH", "setpoint", (80, 40)),
           ("LOAD_DISPATCH", "delta", (5, -1)), ("LOAD_CONTROL", "x-loadControlCapacity", (0.5,)),
           ("ELECTRICITY_PRICE", "price", (1,))]

one_event = st.builds(
    lambda event_id, target, signal, modification, status: event(
        event_id, name=signal[0], kind=signal[1], payloads=signal[2], targets=TARGETS[target],
        modification=modification, status=status, minutes=60),
    st.sampled_from(["a", "b", "c"]), st.integers(0, len(TARGETS) - 1),
    st.sampled_from(SIGNALS), st.integers(0, 2), st.sampled_from(["far", "active", "cancelled"]),
)
distribution = st.lists(one_event, max_size=3).map(
    lambda events: list({e["event_descriptor"]["event_id"]: e for e in events}.values()))


@settings(max_examples=150, deadline=None)
@given(st.lists(distribution, min_size=1, max_size=6))
def test_no_zone_is_left_curtailed_and_redeliveries_are_silent(distributions: list) -> None:
    tracker = EventTracker(TargetMap.from_dict({"ven_id": {"ven-1": ["Z1", "Z2"]},
                                                "group_id": {"g": "Z3"}}),
                           Levels(), shortfall_optout_kw=1.0)
    last: dict[tuple[str, str], str] = {}
    now = T0.timestamp() - 600
    for events in distributions:
        for _ in range(2):  # each distribution twice: the second is a re-delivery
            decision = tracker.on_distribution(events, now)
            if _ == 1:
                assert decision.messages == []
            for message in decision.messages:
                DRContract.model_validate(message)
                last[(message["signal_id"], message["zone_id"])] = message["signal_type"]
            now += 1
    emptied = tracker.on_distribution([], now)  # the VTN holds nothing any more
    for message in emptied.messages:
        DRContract.model_validate(message)
        last[(message["signal_id"], message["zone_id"])] = message["signal_type"]
    assert tracker.events == {}
    assert tracker.on_distribution([], now + 1).messages == []
    assert {key: kind for key, kind in last.items() if kind != "RESTORE"} == {}
