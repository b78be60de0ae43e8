"""File replay: JSONL or CSV files become news items, optionally at a fixed rate.

Column names are configurable because real exports differ: `FileColumns.from_mapping` reads
`headline=title,date=published_at,stock=tickers` (the file's column = the item's field), so a
downloaded dataset loads without editing it. A CSV of `text,label` (the shared data sets) works
with the defaults: `title` falls back to `text`. Dates are read by `connectors.sources.dates`.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from connectors.errors import UserInputError
from connectors.news_item import NewsItem, make_item
from connectors.sources import ErrorHandler, ignore_errors
from connectors.sources.dates import parse_when

csv.field_size_limit(sys.maxsize)

_TITLE_COLUMNS = ("title", "text", "headline", "Title")


@dataclass(frozen=True)
class FileColumns:
    title: str | None = None  # None: the first of title/text/headline present
    body: str = "body"
    url: str = "url"
    published_at: str = "published_at"
    source: str = "source"
    tickers: str = "tickers"

    @classmethod
    def from_mapping(cls, mapping: str) -> FileColumns:
        """`column=field,...`; raises UserInputError naming the bad pair."""
        fields = {name for name in cls.__dataclass_fields__}
        chosen: dict[str, str] = {}
        for pair in (part.strip() for part in mapping.split(",") if part.strip()):
            column, sep, target = (piece.strip() for piece in pair.partition("="))
            if not sep or not column or not target:
                raise UserInputError(f"--map entry {pair!r} is not COLUMN=FIELD")
            if target not in fields:
                raise UserInputError(
                    f"--map entry {pair!r}: {target!r} is not one of {', '.join(sorted(fields))}"
                )
            if target in chosen:
                raise UserInputError(f"--map names two columns for {target!r}")
            chosen[target] = column
        return cls(**chosen)

    def mapped(self) -> dict[str, str]:
        """field -> column for the columns that must exist (the title's default is looked up per row)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if getattr(self, name)}


_TICKER_SPLIT = re.compile(r"[\s,;|/]+")
_TICKER = re.compile(r"[A-Z]{1,6}(\.[A-Z]{1,2})?")


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
        date_format: str | None = None,
        day_first: bool = False,
        assume_tz: tzinfo = UTC,
    ) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        self.path = path
        self.default_source = source or f"file:{path.stem}"
        self.columns = columns or FileColumns()
        self.rate_per_s = rate_per_s
        self.limit = limit
        self.on_error = on_error
        self.date_format = date_format
        self.day_first = day_first
        self.assume_tz = assume_tz

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
            with self.path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
                reader = csv.DictReader(handle)
                self._check_header(list(reader.fieldnames or []))
                for number, row in enumerate(reader, start=2):
                    yield f"{self.path.name}:row {number}", dict(row)

    def _check_header(self, header: list[str]) -> None:
        """A mapped column the CSV does not have is a typo in --map: say so once, not once per row."""
        defaults = FileColumns()
        for field_name, column in self.columns.mapped().items():
            if column != getattr(defaults, field_name) and column not in header:
                raise UserInputError(
                    f"{self.path.name} has no column {column!r} (mapped to {field_name}); "
                    f"its columns are: {', '.join(header)}"
                )

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
                    published_at=parse_when(
                        row.get(self.columns.published_at),
                        fmt=self.date_format,
                        day_first=self.day_first,
                        assume_tz=self.assume_tz,
                    ),
                    tickers=_tickers(row.get(self.columns.tickers)),
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


def _tickers(value: Any) -> list[str]:
    """A tickers column: a JSON list or a string split on spaces, commas, semicolons or bars."""
    if not value:
        return []
    names = value if isinstance(value, list) else _TICKER_SPLIT.split(str(value).strip("[]"))
    tickers = [str(name).strip().strip("'\"$").upper().replace("-", ".") for name in names]
    # Index symbols and other spellings (^GSPC, 7203.T.X) are not tickers the item schema takes.
    return [t for t in tickers if _TICKER.fullmatch(t)]
