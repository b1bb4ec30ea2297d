from __future__ import annotations

import json
from pathlib import Path

import pytest

from evgrid.openadr.mapping import MappingError, TargetMap

MAP = {"ven_id": {"ven-1": ["Z1", "Z2"]}, "group_id": {"north": "Z1"},
       "resource_id": {"site-4": "Z3"}}


def test_targets_resolve_to_zones_in_order_without_duplicates() -> None:
    tm = TargetMap.from_dict(MAP)
    r = tm.resolve([{"group_id": "north"}, {"ven_id": "ven-1"}, {"resource_id": "site-4"}])
    assert r.zones == ("Z1", "Z2", "Z3")
    assert r.reason is None
    assert tm.zones() == ("Z1", "Z2", "Z3")


def test_an_unknown_target_is_reported_never_guessed() -> None:
    r = TargetMap.from_dict(MAP).resolve([{"group_id": "north"}, {"party_id": "acme"}])
    assert r.unmapped == ("party_id=acme",)
    assert "party_id=acme" in (r.reason or "")


def test_no_targets_is_a_reason_too() -> None:
    assert TargetMap.from_dict(MAP).resolve([]).reason == "the event names no target"


@pytest.mark.parametrize("raw, words", [
    ([], "object of target types"),
    ({"zone": {"a": "Z1"}}, "unknown target type"),
    ({"ven_id": {"a": []}}, "non-empty list"),
    ({"ven_id": ["Z1"]}, "expected an object"),
])
def test_malformed_files_say_what_to_fix(raw: object, words: str) -> None:
    with pytest.raises(MappingError, match=words):
        TargetMap.from_dict(raw)


def test_yaml_and_json_files_load(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps(MAP))
    (tmp_path / "m.yaml").write_text("ven_id:\n  ven-1: [Z1, Z2]\ngroup_id:\n  north: Z1\n")
    assert TargetMap.load(tmp_path / "m.json").resolve([{"ven_id": "ven-1"}]).zones == ("Z1", "Z2")
    assert TargetMap.load(tmp_path / "m.yaml").resolve([{"group_id": "north"}]).zones == ("Z1",)
    (tmp_path / "bad.yaml").write_text("ven_id: [unclosed\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        TargetMap.load(tmp_path / "bad.yaml")
    with pytest.raises(MappingError, match="cannot read"):
        TargetMap.load(tmp_path / "missing.json")


def test_the_shipped_example_loads() -> None:
    example = Path(__file__).parents[2] / "config" / "openadr-targets.example.yaml"
    tm = TargetMap.load(example)
    assert tm.zones() == ("Z1", "Z2", "Z3", "Z4")
    assert tm.resolve([{"group_id": "depot-west"}]).zones == ("Z3",)
