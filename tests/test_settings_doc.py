"""docs/configuration.md is generated from the settings classes: it must be what they say now,
and every variable must say what it does."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from evgrid import settings_doc
from evgrid.settings import PROCESSES, TopicNames
from evgrid.settings_doc import SECTIONS, Section, render, undocumented


def test_committed_page_is_current() -> None:
    committed = settings_doc.PAGE.read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/configuration.md is stale: run `python -m evgrid.settings_doc` and commit it")


def test_every_variable_is_documented_once() -> None:
    assert undocumented() == []
    page = render()
    for name in {name for cls in PROCESSES for name in cls.model_fields}:
        if name != "topics":
            assert page.count(f"| `EVGRID_{name.upper()}` |") == 1, name
    for name in TopicNames.model_fields:
        assert page.count(f"| `EVGRID_TOPIC_{name.upper()}` |") == 1, name


def test_a_new_settings_class_is_one_more_section(tmp_path: Path) -> None:
    class Probe(BaseModel):
        """A settings class of another process."""

        model_config = {"use_attribute_docstrings": True}

        probe_port: int = Field(7000, ge=1, le=65535)
        """Where the probe listens."""
        probe_mode: str = ""

    page = render((*SECTIONS, Section("Probe", Probe)))
    assert "## Probe" in page
    assert "| `EVGRID_PROBE_PORT` | `7000` | int, ≥ 1, ≤ 65535 | Where the probe listens. |" in page
    assert undocumented((Section("Probe", Probe),)) == ["Probe.probe_mode"]
    out = tmp_path / "configuration.md"
    assert settings_doc.main(["--out", str(out)]) == 0
    assert settings_doc.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text() + "edited by hand\n")
    assert settings_doc.main(["--check", "--out", str(out)]) == 1


def test_one_section_per_process_and_the_advanced_knobs_apart() -> None:
    page = render()
    titles = [line for line in page.splitlines() if line.startswith("## ")]
    for command in ("worker", "gateway", "openadr", "sql"):
        assert any(f"`evgrid {command}`" in t for t in titles), command
    advanced = page[page.index("## Advanced"):]
    advanced = advanced[:advanced.index("\n## ")]
    assert "`EVGRID_CHECKPOINT_INTERVAL_S`" in advanced
    assert "`EVGRID_STALE_AFTER_S`" not in advanced
    assert "<app id>-station-rows" in page and "EVGRID_TOPIC_STATION_ROWS" not in page
