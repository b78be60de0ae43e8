"""File replay: JSONL or CSV files become news items, optionally at a fixed rate.

Column names are configurable because real exports differ; a CSV of `text,label` (the shared
data sets) works with the defaults: `title` falls back to `text`.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.news_item import NewsItem, make_item
from connectors.sources import ErrorHandler, ignore_errors

csv.field_size_limit(sys.maxsize)

_TITLE_COLUMNS = ("title", "text", "headline", "Title")


@dataclass(frozen=True)
class FileColumns:
    title: str | None = None  # None: the first of title/text/headline present
    body: str = "body"
    url: str = "url"
    published_at: str = "published_at"
    source: str = "source"


class FileSource:
    def __init__(
        self,
        path: Path,
        *,
        source: str | None = None,
        columns: FileColumns | None = None,
        rate_per_s: float | None = None,
        limit: int | None = None,
        on_error: ErrorHandler = ignore_errors,
    ) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        self.path = path
        self.default_source = source or f"file:{path.stem}"
        self.columns = columns or FileColumns()
        self.rate_per_s = rate_per_s
        self.limit = limit
        self.on_error = on_error

    def _rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            with self.path.open(encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        self.on_error(f"{self.path.name}:{number}", f"invalid JSON: {exc}")
                        continue
                    if not isinstance(row, dict):
                        self.on_error(f"{self.path.name}:{number}", "line is not a JSON object")
                        continue
                    yield f"{self.path.name}:{number}", row
        else:
            with self.path.open(encoding="utf-8", errors="replace", newline="") as handle:
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    yield f"{self.path.name}:row {number}", dict(row)

    def _title_column(self, row: dict[str, Any]) -> str | None:
        if self.columns.title:
            return self.columns.title
        return next((name for name in _TITLE_COLUMNS if name in row), None)

    def items(self) -> Iterator[NewsItem]:
        produced = 0
        interval = 1.0 / self.rate_per_s if self.rate_per_s else 0.0
        next_at = time.monotonic()
        for where, row in self._rows():
            if self.limit is not None and produced >= self.limit:
                return
            title_column = self._title_column(row)
            try:
                item = make_item(
                    source=str(row.get(self.columns.source) or self.default_source),
                    title=str(row.get(title_column) or "") if title_column else "",
                    body=str(row.get(self.columns.body) or ""),
                    url=str(row[self.columns.url]) if row.get(self.columns.url) else None,
                    published_at=_parse_time(row.get(self.columns.published_at)),
                )
            except ValueError as exc:
                self.on_error(where, str(exc).splitlines()[0])
                continue
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            produced += 1
            yield item


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"published_at {value!r} has no time zone")
    return parsed
