from __future__ import annotations

from datetime import timedelta

import pytest

from evgrid.models.outputs import zone_load_report
from evgrid.openadr.mapping import TargetMap
from evgrid.openadr.signals import Levels
from evgrid.openadr.tracker import OPT_IN, OPT_OUT, Decision, EventTracker
from tests.openadr.dr_contract import DRContract
from tests.openadr.events import T0, event

NOW = T0.timestamp() - 60


def tracker() -> EventTracker:
    targets = TargetMap.from_dict({"ven_id": {"ven-1": ["Z1", "Z2"]}, "group_id": {"g": "Z3"}})
    return EventTracker(targets, Levels(25, 50, 100), shortfall_optout_kw=1.0)


def checked(decision: Decision) -> Decision:
    for message in decision.messages:
        DRContract.model_validate(message)
    return decision


def test_an_event_becomes_one_dr_event_per_zone_and_is_opted_in() -> None:
    d = checked(tracker().on_distribution([event(payloads=(2,), priority=2)], NOW))
    assert [(m["zone_id"], m["target_reduction_pct"], m["priority"]) for m in d.messages] == [
        ("Z1", 50.0, 2), ("Z2", 50.0, 2)]
    assert {m["signal_id"] for m in d.messages} == {"oadr:e1"}
    assert [(r.event_id, r.opt_type) for r in d.responses] == [("e1", OPT_IN)]


def test_a_redelivery_publishes_nothing_and_answers_the_same() -> None:
    t = tracker()
    t.on_distribution([event()], NOW)
    again = t.on_distribution([event()], NOW + 5)
    assert again.messages == []
    assert [r.opt_type for r in again.responses] == [OPT_IN]


def test_unknown_targets_opt_out_with_reason_and_publish_nothing() -> None:
    d = tracker().on_distribution([event(targets=[{"ven_id": "ven-1"}, {"party_id": "x"}])], NOW)
    assert d.messages == []
    assert d.responses[0].opt_type == OPT_OUT
    assert "party_id=x" in d.responses[0].reason


def test_unknown_signal_opts_out() -> None:
    d = tracker().on_distribution([event(name="ELECTRICITY_PRICE", kind="price")], NOW)
    assert d.messages == [] and d.responses[0].opt_type == OPT_OUT
    assert "no supported signal" in d.responses[0].reason


def test_a_modification_republishes_with_a_later_received_ts() -> None:
    t = tracker()
    first = t.on_distribution([event(payloads=(1,))], NOW)
    second = checked(t.on_distribution([event(payloads=(3,), modification=1)], NOW + 7))
    assert [m["signal_type"] for m in second.messages] == ["SHED", "SHED"]
    assert second.messages[0]["signal_id"] == first.messages[0]["signal_id"]
    assert second.messages[0]["received_ts"] > first.messages[0]["received_ts"]
    assert second.messages[0]["target_reduction_pct"] == 100.0


def test_a_modification_that_changes_nothing_publishes_nothing() -> None:
    t = tracker()
    t.on_distribution([event()], NOW)
    assert t.on_distribution([event(modification=1)], NOW + 3).messages == []


def test_cancelled_restores_each_zone() -> None:
    t = tracker()
    t.on_distribution([event()], NOW)
    d = checked(t.on_distribution([event(status="cancelled", modification=1)], NOW + 3))
    assert [(m["zone_id"], m["signal_type"]) for m in d.messages] == [
        ("Z1", "RESTORE"), ("Z2", "RESTORE")]
    assert t.events == {}


def test_implied_cancellation_restores_an_event_missing_from_the_distribution() -> None:
    t = tracker()
    t.on_distribution([event("e1"), event("e2", targets=[{"group_id": "g"}])], NOW)
    d = checked(t.on_distribution([event("e2", targets=[{"group_id": "g"}])], NOW + 2))
    assert {(m["signal_id"], m["signal_type"]) for m in d.messages} == {("oadr:e1", "RESTORE")}
    assert set(t.events) == {"e2"}


def test_a_later_interval_updates_the_event_on_the_tick() -> None:
    t = tracker()
    t.on_distribution([event(payloads=(1, 2), minutes=5)], NOW)
    assert t.on_tick(T0.timestamp() + 10).messages == []
    d = checked(t.on_tick(T0.timestamp() + 301))
    assert [m["target_reduction_pct"] for m in d.messages] == [50.0, 50.0]
    assert {m["end_ts"] for m in d.messages} == {"2026-06-01T12:10:00Z"}
    t.on_tick(T0.timestamp() + 600)
    assert t.events == {}


def test_a_retargeting_modification_restores_the_zone_it_drops() -> None:
    t = tracker()
    t.on_distribution([event(targets=[{"ven_id": "ven-1"}])], NOW)
    d = t.on_distribution([event(targets=[{"group_id": "g"}], modification=1)], NOW + 1)
    assert sorted((m["zone_id"], m["signal_type"]) for m in d.messages) == [
        ("Z1", "RESTORE"), ("Z2", "RESTORE"), ("Z3", "CURTAIL")]


def test_a_shortfall_the_engine_cannot_close_opts_out_then_back_in() -> None:
    t = tracker()
    t.on_distribution([event()], NOW)
    status = {"signal_id": "oadr:e1", "zone_id": "Z2", "state": "ACTIVE", "shortfall_kw": 12.5}
    out = t.on_dr_status(status).responses
    assert [(r.opt_type, r.reason) for r in out] == [
        (OPT_OUT, "cannot reach the cap: zone Z2 short by 12.5 kW")]
    assert t.on_dr_status(status).responses == []  # told once
    back = t.on_dr_status({**status, "shortfall_kw": 0.0}).responses
    assert [r.opt_type for r in back] == [OPT_IN]
    assert t.on_dr_status({**status, "signal_id": "S-other"}).responses == []


def test_a_completed_event_is_forgotten_without_a_restore() -> None:
    t = tracker()
    t.on_distribution([event()], NOW)
    d = t.on_distribution([event(status="completed", modification=0)], NOW + 700)
    assert d.messages == [] and t.events == {}


def test_response_never_means_no_opt_sent() -> None:
    d = tracker().on_distribution([event(response_required="never")], NOW)
    assert d.responses == [] and len(d.messages) == 2


def test_contract_rejects_two_amounts() -> None:
    message = tracker().on_distribution([event()], NOW).messages[0]
    with pytest.raises(ValueError, match="exactly one"):
        DRContract.model_validate({**message, "cap_kw": 3.0})


def test_zone_load_report_is_built_from_a_zone_summary() -> None:
    r = zone_load_report({"zone_id": "Z1", "zone_total_power_kw": 12.34567,
                          "zone_capacity_kw": 100, "stations_active": 3}, T0.timestamp(),
                         cap_kw=80.0, shortfall_kw=-0.0001, stations_uncontrollable=1)
    assert (r.zone_total_power_kw, r.cap_kw, r.shortfall_kw, r.stations_uncontrollable) == (
        12.346, 80.0, 0.0, 1)
    assert r.ts == T0 and r.ts + timedelta(0) == T0
