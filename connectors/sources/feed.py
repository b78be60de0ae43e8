"""RSS and Atom feeds, parsed by feedparser from bytes the polite fetcher got."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser

from connectors.fetch import PoliteFetcher
from connectors.news_item import NewsItem
from connectors.scrape.links import Link
from connectors.sources import ErrorHandler, entries_to_items, entries_to_links, ignore_errors


class FeedSource:
    def __init__(
        self,
        url: str,
        fetcher: PoliteFetcher,
        *,
        source: str | None = None,
        on_error: ErrorHandler = ignore_errors,
    ) -> None:
        self.url = url
        self.fetcher = fetcher
        self.source = source
        self.on_error = on_error

    def _entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """One poll: (where, fields) of the feed's current entries (nothing when the server says 304)."""
        result = self.fetcher.get(self.url)
        if result.not_modified or result.content is None:
            return
        # feedparser is handed bytes, never the URL: all network access goes through the fetcher.
        parsed = feedparser.parse(result.content, sanitize_html=True, resolve_relative_uris=False)
        if parsed.bozo and not parsed.entries:
            self.on_error(self.url, f"not a feed: {parsed.get('bozo_exception')}")
            return
        source = self.source or parsed.feed.get("title") or self.url
        for number, entry in enumerate(parsed.entries):
            yield (
                f"{self.url} entry {number}",
                {
                    "source": str(source)[:200],
                    "title": str(entry.get("title") or ""),
                    "body": str(entry.get("summary") or entry.get("description") or ""),
                    "url": entry.get("link"),
                    "published_at": _entry_time(entry),
                    "lang": str(parsed.feed.get("language") or "en")[:16],
                },
            )

    def items(self) -> Iterator[NewsItem]:
        return entries_to_items(self._entries(), self.on_error)

    def links(self) -> Iterator[Link]:
        return entries_to_links(self._entries(), self.on_error)


def _entry_time(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
    return None
