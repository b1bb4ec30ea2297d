"""The repository's documentation stands on its own: a short README that links every page
under docs/, and links between pages that resolve to files in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PAGES = sorted((ROOT / "docs").glob("*.md"))


def test_readme_is_short_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    linked = {(ROOT / target).resolve() for target in LINK.findall(readme)}
    assert PAGES and {p.resolve() for p in PAGES} <= linked, (
        sorted(p.name for p in PAGES if p.resolve() not in linked))


def test_relative_links_resolve_inside_the_repository() -> None:
    for doc in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *PAGES,
                ROOT / "bench" / "results" / "README.md"]:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: {target}"
