"""The outbox's bookkeeping: order per slot, the newest decision per slot, every report."""

from __future__ import annotations

from evgrid.outbox import Outbox


def test_a_newer_output_of_a_slot_replaces_the_waiting_one() -> None:
    superseded: list = []
    box = Outbox(on_superseded=superseded.append)
    box.put("cmd", b"S1", b"set-1", slot=("cmd", b"S1", "E1"))
    box.put("cmd", b"S1", b"set-2", slot=("cmd", b"S1", "E1"))
    box.put("cmd", b"S1", b"set-E2", slot=("cmd", b"S1", "E2"))  # another event: kept
    assert [o.value for o in box.take()] == [b"set-2", b"set-E2"]
    assert [o.value for o in superseded] == [b"set-1"] and box.superseded == 1


def test_a_slot_has_one_output_in_flight_and_a_failed_one_yields_to_a_newer() -> None:
    box = Outbox()
    slot = ("cmd", b"S1", "E1")
    box.put("cmd", b"S1", b"set", slot=slot)
    (first,) = box.take()
    box.put("cmd", b"S1", b"clear", slot=slot)
    assert box.take() == []  # the SET is in flight: the CLEAR waits behind it
    box.failed(first)  # the SET failed: the CLEAR stands, the SET is never re-sent
    assert box.superseded == 1
    (second,) = box.take()
    assert second.value == b"clear" and len(box) == 1
    box.acked(second)
    assert box.empty


def test_a_failed_output_waits_again_in_its_place_by_age() -> None:
    box = Outbox()
    box.put("cmd", b"S1", b"a", slot=("cmd", b"S1", "E1"))
    box.put("rep", b"Z1", b"report")
    taken = box.take()
    box.put("cmd", b"S2", b"b", slot=("cmd", b"S2", "E1"))
    for out in taken:
        box.failed(out)
    retry = box.take()
    assert [o.value for o in retry] == [b"a", b"report", b"b"]
    assert [o.attempts for o in retry] == [2, 2, 1]


def test_every_report_is_kept_up_to_the_bound_then_the_oldest_goes() -> None:
    box = Outbox(keep_max=3)
    for n in range(5):
        box.put("rep", b"Z1", f"r{n}".encode())
    box.put("cmd", b"S1", b"set", slot=("cmd", b"S1", "E1"))  # slotted: not in that bound
    assert [o.value for o in box.take()] == [b"r2", b"r3", b"r4", b"set"]
    assert box.dropped == 2 and box.peak == 4
