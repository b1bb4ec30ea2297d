"""The delivery rules (pure): every command ends in exactly one final outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evgrid.gateway.ledger import Command, Ledger, Outcome, Send, home_instance

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def cmd(command_id: str, station_id: str = "CP-1", at: int = 0, valid_s: int = 600,
        action: str = "SET") -> Command:
    return Command(command_id, station_id, action, "S1", T0 + timedelta(seconds=at),
                   T0 + timedelta(seconds=valid_s), raw={})


def statuses(effects: list) -> list[tuple[str, str]]:
    return [(e.command.command_id, e.status) for e in effects if isinstance(e, Outcome)]


def test_connected_charger_gets_the_command_and_duplicates_are_dropped() -> None:
    ledger = Ledger("gw1", ("gw1",))
    assert ledger.on_boot("CP-1") == []
    assert ledger.on_command(cmd("a"), T0) == [Send("CP-1")]
    sent, _ = ledger.take("CP-1", T0)
    assert sent is not None and sent.attempt == 1
    assert ledger.on_command(cmd("a"), T0) == []  # in flight: not again
    assert statuses(ledger.delivered("CP-1", "Accepted", None)) == [("a", "Accepted")]
    assert ledger.on_command(cmd("a"), T0) == []  # final: not again


def test_offline_once_then_delivered_after_boot() -> None:
    ledger = Ledger("gw1", ("gw1",))
    assert statuses(ledger.on_command(cmd("a"), T0)) == [("a", "Offline")]
    assert ledger.on_boot("CP-1") == [Send("CP-1")]
    ledger.take("CP-1", T0)
    assert ledger.on_disconnect("CP-1") == []  # already reported Offline: not twice
    assert ledger.on_boot("CP-1") == [Send("CP-1")]
    sent, _ = ledger.take("CP-1", T0)
    assert sent is not None and sent.attempt == 2


def test_newer_command_supersedes_the_pending_one_and_late_older_ones() -> None:
    ledger = Ledger("gw1", ("gw1",))
    ledger.on_command(cmd("a", at=0), T0)
    effects = ledger.on_command(cmd("b", at=5), T0)
    assert statuses(effects) == [("a", "Superseded"), ("b", "Offline")]
    assert statuses(ledger.on_command(cmd("old", at=1), T0)) == [("old", "Superseded")]


def test_never_reconnected_expires_at_valid_to() -> None:
    ledger = Ledger("gw1", ("gw1",))
    ledger.on_command(cmd("a", valid_s=60), T0)
    assert ledger.expire(T0 + timedelta(seconds=59)) == []
    assert statuses(ledger.expire(T0 + timedelta(seconds=60))) == [("a", "Expired")]
    assert ledger.expire(T0 + timedelta(seconds=61)) == []


def test_one_retry_on_timeout() -> None:
    ledger = Ledger("gw1", ("gw1",))
    ledger.on_boot("CP-1")
    ledger.on_command(cmd("a"), T0)
    ledger.take("CP-1", T0)
    assert ledger.retry("CP-1") is True
    assert ledger.retry("CP-1") is False
    assert statuses(ledger.delivered("CP-1", "Timeout", "x")) == [("a", "Timeout")]


def test_only_the_responsible_instance_publishes_and_holding_moves_it() -> None:
    gw1, gw2 = Ledger("gw1", ("gw1", "gw2")), Ledger("gw2", ("gw1", "gw2"))
    station = next(f"CP-{n}" for n in range(100) if home_instance(f"CP-{n}", gw1.instances)
                   == "gw1")
    assert statuses(gw1.on_command(cmd("a", station), T0)) == [("a", "Offline")]
    assert gw2.on_command(cmd("a", station), T0) == []
    gw2.on_outcome("a", "Offline")
    # The charger connects to gw2: gw2 delivers, gw1 learns it no longer holds it.
    assert gw2.on_boot(station) == [Send(station)]
    gw1.on_holder(station, "gw2", connected=True)
    gw2.take(station, T0)
    assert statuses(gw2.delivered(station, "Accepted", None)) == [("a", "Accepted")]
    gw1.on_outcome("a", "Accepted")
    assert gw1.expire(T0 + timedelta(hours=1)) == []  # already final: never Expired too


def test_a_clear_at_the_events_end_still_reaches_a_connected_charger() -> None:
    ledger = Ledger("gw1", ("gw1",))
    ledger.on_boot("CP-1")
    assert ledger.on_command(cmd("clear", valid_s=0, action="CLEAR"), T0) == [Send("CP-1")]
    sent, _ = ledger.take("CP-1", T0)
    assert sent is not None
    away = Ledger("gw1", ("gw1",))
    assert statuses(away.on_command(cmd("clear", valid_s=0, action="CLEAR"), T0)) == [
        ("clear", "Expired")]
    assert statuses(away.on_command(cmd("late-set", valid_s=0), T0)) == [
        ("late-set", "Expired")]


def test_charger_answers_map_to_outcome_statuses() -> None:
    from evgrid.gateway.charge_point import _status_of

    assert _status_of({"status": "Accepted"}) == ("Accepted", None)
    assert _status_of({"status": "Rejected", "statusInfo": {
        "reasonCode": "TxNotFound", "additionalInfo": "no session"}}) == (
        "Rejected", "TxNotFound: no session")
    assert _status_of({"status": "NotSupported"})[0] == "NotSupported"
    assert _status_of({"status": "Unknown"})[0] == "Accepted"  # nothing left to clear
    assert _status_of({"status": "Maybe"})[0] == "CallError"
