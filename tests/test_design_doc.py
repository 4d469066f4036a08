"""The design notes the code cites live in the repository (docs/design.md), and every citation finds its anchor."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

SOURCES = [
    p
    for folder in ("dassl", "trainers", "datasets", "tools", "tests", "scripts", "benchmarks", "promptkd", "docs")
    for p in sorted((REPO_ROOT / folder).rglob("*"))
    if p.suffix in (".py", ".sh", ".md") and p.is_file() and not p.is_symlink()
] + [REPO_ROOT / "README.md", REPO_ROOT / "train.py"]


def test_every_design_citation_points_at_an_anchor_of_docs_design_md():
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', (REPO_ROOT / "docs" / "design.md").read_text()))
    cited = {
        (path.relative_to(REPO_ROOT).as_posix(), anchor)
        for path in SOURCES
        for anchor in re.findall(r"docs/design\.md#([a-z0-9-]+)", path.read_text(encoding="utf-8"))
    }
    assert {"precision", "promptkd", "golden-fixtures", "config-nodes"} <= {anchor for _, anchor in cited}
    assert sorted((file, anchor) for file, anchor in cited if anchor not in anchors) == []


def test_nothing_cites_design_notes_outside_the_repository():
    gone = re.compile(r"reference-promptkd\.md|baselines\.md|landscape\.md|DESIGN(\.md)? ?§")
    here = "tests/test_design_doc.py"
    offenders = [p.relative_to(REPO_ROOT).as_posix() for p in SOURCES if gone.search(p.read_text(encoding="utf-8"))]
    assert [p for p in offenders if p != here] == []
