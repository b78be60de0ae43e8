"""News sources: each yields validated `NewsItem`s and reports the rows it could not use.

One small, consistent API for every source (river-style): `items()` is an iterator of
`NewsItem`; rows that cannot become an item are passed to `on_error(where, reason)` instead of
stopping the whole source.

Part of `connectors`: imports nothing from `models`, `alerts` or `pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from connectors.news_item import NewsItem, make_item
from connectors.scrape.links import Link, make_link

ErrorHandler = Callable[[str, str], None]
Entries = Iterable[tuple[str, dict[str, Any]]]  # (where, make_item fields) of a polled listing


def entries_to_items(entries: Entries, on_error: ErrorHandler) -> Iterator[NewsItem]:
    """A listing's entries as news items (title and summary only: no page is fetched)."""
    for where, fields in entries:
        try:
            yield make_item(**fields)
        except ValueError as exc:
            on_error(where, str(exc).splitlines()[0])


def entries_to_links(entries: Entries, on_error: ErrorHandler) -> Iterator[Link]:
    """A listing's entries as links for the scrapers; entries without a link cannot be scraped."""
    for where, fields in entries:
        if not fields["url"]:
            on_error(where, "entry has no link")
            continue
        try:
            yield make_link(
                url=str(fields["url"]),
                source=fields["source"],
                title=fields["title"],
                summary=fields["body"],
                published_at=fields["published_at"],
                lang=fields.get("lang"),
            )
        except ValueError as exc:
            on_error(where, str(exc).splitlines()[0])


def ignore_errors(where: str, reason: str) -> None:
    """Default handler for callers that count nothing."""
