"""The repository's documentation stands alone: every relative link resolves inside a clone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_EXTERNAL = ("http://", "https://", "mailto:")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(h) for h in _HEADING.findall(text)}


def _links(path: Path) -> list[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return _LINK.findall(text)


def broken_links(path: Path, *, root: Path = ROOT) -> list[str]:
    """Relative links of one Markdown file that leave the repository, miss a file, or miss an anchor."""
    out: list[str] = []
    for target in _links(path):
        if target.startswith(_EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.is_relative_to(root):
            out.append(f"{target}: leaves the repository")
        elif not dest.exists():
            out.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            out.append(f"{target}: no heading with anchor #{anchor}")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_in_the_doc_resolves_inside_the_repository(doc: Path) -> None:
    assert broken_links(doc) == []


def test_link_checker_reports_a_link_outside_the_clone_a_missing_file_and_a_missing_anchor(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "DESIGN.md").write_text("# Design\n", encoding="utf-8")
    (repo / "docs" / "design.md").write_text("# Design\n## Gate reasons\n", encoding="utf-8")
    probe = repo / "docs" / "probe.md"
    probe.write_text(
        "# Probe\n[out](../../shared/DESIGN.md) [gone](nothing-here.md) "
        "[anchor](design.md#no-such-heading) [ok](design.md#gate-reasons) [self](#probe)\n"
        "```\n[in a fence](ignored.md)\n```\n`[in code](ignored.md)`\n",
        encoding="utf-8",
    )
    assert broken_links(probe, root=repo) == [
        "../../shared/DESIGN.md: leaves the repository",
        "nothing-here.md: no such file",
        "design.md#no-such-heading: no heading with anchor #no-such-heading",
    ]


def test_docs_cite_no_unexplained_incident_numbers_or_outside_design_sections() -> None:
    pattern = re.compile(r"\bseeds? \d{3}\b|DESIGN §|shared/DESIGN", re.I)
    hits = [
        f"{d.relative_to(ROOT)}:{n}: {line.strip()}"
        for d in DOCS
        for n, line in enumerate(d.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
