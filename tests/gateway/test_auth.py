"""Who may connect (pure): hashed per-charger passwords, Basic credentials, the allow-list."""

from __future__ import annotations

import base64

import pytest

from evgrid.gateway.auth import (
    Gatekeeper,
    basic_credentials,
    hash_password,
    load_passwords,
    verify_password,
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_passwords_are_stored_salted_and_verified() -> None:
    one, two = hash_password("pw"), hash_password("pw")
    assert one != two and "pw" not in one  # salted, never in clear
    assert verify_password("pw", one) and not verify_password("pW", one)
    assert not verify_password("pw", "md5$00$00") and not verify_password("pw", "garbage")


def test_basic_header_parsing() -> None:
    assert basic_credentials(basic("CP-1", "a:b")) == ("CP-1", "a:b")
    for bad in (None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"nocolon")
                .decode()):
        assert basic_credentials(bad) is None


def test_gatekeeper_reasons(tmp_path) -> None:
    path = tmp_path / "pw"
    path.write_text(f"# chargers\nCP-1:{hash_password('one')}\n\nCP-2:{hash_password('two')}\n")
    keeper = Gatekeeper(frozenset({"CP-1"}), load_passwords(path))
    assert keeper.refuse("CP-1", basic("CP-1", "one")) is None
    assert keeper.refuse("CP-1", basic("CP-1", "two")) == "bad_credentials"
    assert keeper.refuse("CP-1", basic("CP-2", "two")) == "bad_credentials"  # not its id
    assert keeper.refuse("CP-1", None) == "no_credentials"
    assert keeper.refuse("CP-2", basic("CP-2", "two")) == "not_allowed"
    assert keeper.refuse("", None) == "bad_charge_point_id"
    assert Gatekeeper(frozenset(), None).refuse("ANY", None) is None  # profile 0, no list


def test_a_malformed_passwords_file_says_what_to_do(tmp_path) -> None:
    path = tmp_path / "pw"
    path.write_text("CP-1:plaintext\n")
    with pytest.raises(SystemExit, match="hash-password"):
        load_passwords(path)


def test_hash_password_command_prints_a_passwords_file_line(tmp_path, monkeypatch,
                                                            capsys) -> None:
    import io

    from evgrid.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["gateway", "hash-password", "CP-9"]) == 0
    line = capsys.readouterr().out.strip()
    (tmp_path / "pw").write_text(line + "\n")
    stored = load_passwords(tmp_path / "pw")["CP-9"]
    assert verify_password("s3cret", stored)
