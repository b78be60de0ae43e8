"""Extraction over saved pages (`finsent extract`): one JSON record per file, in file-name order.

Every file gets a record, so an evaluation can line records up with its files: a file that
cannot be read, is not HTML, or has no main text gets `extracted: false` and a `reason`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from connectors.scrape.extract import Extraction, extract_page


def page_files(source: Path) -> list[Path]:
    """The file itself, or every file under the folder (hidden ones skipped), sorted by relative path."""
    if source.is_file():
        return [source]
    return sorted(
        (
            path
            for path in source.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(source).parts)
        ),
        key=lambda path: path.relative_to(source).as_posix(),
    )


def extract_files(files: Sequence[Path], root: Path, *, min_words: int = 40) -> Iterator[dict[str, Any]]:
    for path in files:
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        try:
            content = path.read_bytes()
        except OSError as exc:
            yield Extraction(False, reason=f"cannot read: {exc.strerror or exc}", code="unreadable").as_json(
                name
            )
            continue
        yield extract_page(content, None, min_words=min_words).as_json(name)
