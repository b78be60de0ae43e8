"""News sitemaps: the `<urlset>` with `<news:news>` entries that publishers expose for search
engines, and `<sitemapindex>` files that point to them.

Parsed with defusedxml: a sitemap is untrusted XML, and entity expansion ("billion laughs") or
external entities must not run. An index is followed to a bounded depth and number of children,
so a loop of indexes or an index of ten thousand archives cannot keep one poll busy forever.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

from defusedxml import ElementTree

from connectors.fetch import PoliteFetcher
from connectors.scrape.links import Link, make_link
from connectors.sources import ErrorHandler, ignore_errors

_NS = {
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
    "news": "http://www.google.com/schemas/sitemap-news/0.9",
}


@dataclass(frozen=True)
class SitemapEntry:
    url: str
    title: str = ""
    published_at: datetime | None = None
    lang: str | None = None
    publication: str | None = None


def _text(element: object | None) -> str:
    value = getattr(element, "text", None)
    return value.strip() if isinstance(value, str) else ""


def _time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None  # a date without zone says too little


def parse_sitemap(content: bytes, base_url: str) -> tuple[list[SitemapEntry], list[str]]:
    """(article entries, child sitemap URLs) of one sitemap file; raises ValueError if it is not one."""
    if content[:2] == b"\x1f\x8b":
        content = gzip.decompress(content)
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    tag = root.tag.rsplit("}", 1)[-1]
    if tag == "sitemapindex":
        children = [_text(node) for node in root.findall("sm:sitemap/sm:loc", _NS)]
        return [], [urljoin(base_url, child) for child in children if child]
    if tag != "urlset":
        raise ValueError(f"root element is <{tag}>, not <urlset> or <sitemapindex>")
    entries = []
    for node in root.findall("sm:url", _NS):
        loc = _text(node.find("sm:loc", _NS))
        if not loc:
            continue
        news = node.find("news:news", _NS)
        lastmod = _text(node.find("sm:lastmod", _NS))
        if news is None:
            entries.append(SitemapEntry(urljoin(base_url, loc), published_at=_time(lastmod)))
            continue
        entries.append(
            SitemapEntry(
                url=urljoin(base_url, loc),
                title=_text(news.find("news:title", _NS)),
                published_at=_time(_text(news.find("news:publication_date", _NS))) or _time(lastmod),
                lang=_text(news.find("news:publication/news:language", _NS)) or None,
                publication=_text(news.find("news:publication/news:name", _NS)) or None,
            )
        )
    return entries, []


class SitemapSource:
    """Discovery from a news sitemap (or an index of them): one poll yields its article links."""

    def __init__(
        self,
        url: str,
        fetcher: PoliteFetcher,
        *,
        source: str | None = None,
        on_error: ErrorHandler = ignore_errors,
        max_depth: int = 2,
        max_children: int = 50,
    ) -> None:
        self.url = url
        self.fetcher = fetcher
        self.source = source
        self.on_error = on_error
        self.max_depth = max_depth
        self.max_children = max_children

    def links(self) -> Iterator[Link]:
        yield from self._walk(self.url, 0, set())

    def _walk(self, url: str, depth: int, visited: set[str]) -> Iterator[Link]:
        visited.add(url)
        result = self.fetcher.get(url)
        if result.not_modified or result.content is None:
            return
        try:
            entries, children = parse_sitemap(result.content, result.url)
        except ValueError as exc:
            self.on_error(url, f"not a sitemap: {exc}")
            return
        for entry in entries:
            try:
                yield make_link(
                    url=entry.url,
                    source=self.source or entry.publication or (result.url.split("/")[2]),
                    title=entry.title,
                    published_at=entry.published_at,
                    lang=entry.lang,
                )
            except ValueError as exc:
                self.on_error(url, str(exc))
        if children and depth >= self.max_depth:
            self.on_error(url, f"sitemap index nested deeper than {self.max_depth}; children skipped")
            return
        for child in children[: self.max_children]:
            if child not in visited:
                yield from self._walk(child, depth + 1, visited)
        if len(children) > self.max_children:
            self.on_error(
                url, f"sitemap index lists {len(children)} sitemaps; read the first {self.max_children}"
            )
