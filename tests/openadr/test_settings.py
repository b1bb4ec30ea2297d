from __future__ import annotations

from pathlib import Path

import pytest

from evgrid.openadr.ven import SettingsProblem, check_settings
from evgrid.settings import VenSettings


def test_signatures_are_on_unless_switched_off_explicitly() -> None:
    assert VenSettings.from_env({}).openadr_signatures is True
    assert VenSettings.from_env({"EVGRID_OPENADR_SIGNATURES": "false"}).openadr_signatures is False


def test_missing_settings_are_named_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(SettingsProblem) as exc:
        check_settings(VenSettings.from_env({}))
    words = str(exc.value)
    for name in ("EVGRID_OPENADR_VTN_URL", "EVGRID_OPENADR_TARGETS_FILE", "EVGRID_OPENADR_CERT",
                 "EVGRID_OPENADR_KEY", "EVGRID_OPENADR_VTN_FINGERPRINT",
                 "EVGRID_OPENADR_SIGNATURES=false"):
        assert name in words
    env = {"EVGRID_OPENADR_SIGNATURES": "0", "EVGRID_OPENADR_VTN_URL": "http://127.0.0.1:1/x",
           "EVGRID_OPENADR_TARGETS_FILE": str(tmp_path / "t.json")}
    with pytest.raises(SettingsProblem, match=r"t\.json, which is not a file"):
        check_settings(VenSettings.from_env(env))
    (tmp_path / "t.json").write_text("{}")
    check_settings(VenSettings.from_env(env))  # complete without certificates once signatures off


def test_zone_load_topic_is_registered() -> None:
    from evgrid.topics import topic_specs

    settings = VenSettings()
    assert settings.topics.zone_load == "grid.zone_load"
    assert any(s.name == "grid.zone_load" and not s.copartitioned for s in topic_specs(settings))
