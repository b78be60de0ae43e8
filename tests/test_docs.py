"""The front page stays short, the manual stays reachable, and the configuration reference stays complete."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.settings import REPO_ROOT, Settings

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
        found.add(slug.replace(" ", "-"))
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto: — not ours to check offline
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{page.name}: {target} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text(encoding="utf-8")):
            problems.append(f"{page.name}: {target} has no such heading")
    return problems


def test_readme_is_a_short_front_page_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text) < 8000, f"README has {len(text)} characters; move detail to docs/"
    commands = re.findall(r"^make (\w+)", text, flags=re.M)
    assert commands == ["demo", "test"]


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in LINK.findall(README.read_text(encoding="utf-8"))
    }
    docs = sorted(DOCS.glob("*.md"))
    assert len(docs) >= 7
    assert [d.name for d in docs if d.resolve() not in linked] == []


def test_no_relative_link_is_broken() -> None:
    pages = [README, *sorted(DOCS.glob("*.md"))]
    assert [problem for page in pages for problem in broken_links(page)] == []


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "a.md"
    page.write_text(
        "# Title here\n\n[ok](a.md#title-here) [gone](b.md) [bad](a.md#nope) [web](https://x.org/y)\n"
    )
    assert broken_links(page) == ["a.md: b.md does not exist", "a.md: a.md#nope has no such heading"]


def _documented_variables(markdown: str) -> set[str]:
    """Each table row's variables, with shorthands expanded: `FINSENT_SMTP_USERNAME` / `_PASSWORD`
    stands for FINSENT_SMTP_PASSWORD too, `FINSENT_WORKER_METRICS_PORT` / `_SCHEDULER_` for
    FINSENT_SCHEDULER_METRICS_PORT."""
    names: set[str] = set()
    for row in (line for line in markdown.splitlines() if line.startswith("| `")):
        cell = row.split("|")[1]
        tokens = re.findall(r"`(FINSENT_[A-Z0-9_]+|_[A-Z0-9_]+)`", cell)
        full = [t for t in tokens if t.startswith("FINSENT_")]
        names.update(full)
        for tail in (t for t in tokens if t.startswith("_")):
            for name in full:
                segments = name.split("_")
                for k in range(1, len(segments)):
                    head = "_".join(segments[:k])
                    names.add(head + tail)  # suffix shorthand
                    rest = "_".join(segments[k + 1 :])
                    if tail.endswith("_") and rest:  # middle shorthand
                        names.add(head + tail + rest)
    return names


def test_every_setting_is_in_the_configuration_reference() -> None:
    documented = _documented_variables((DOCS / "configuration.md").read_text(encoding="utf-8"))
    missing = [
        f"FINSENT_{field.upper()}"
        for field in Settings.model_fields
        if f"FINSENT_{field.upper()}" not in documented
    ]
    assert missing == []
