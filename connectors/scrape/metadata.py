"""Article metadata from the page's own markup: JSON-LD `NewsArticle`, Open Graph, `<time>`.

Publishers state title, canonical URL, time and author several ways, often more than one on a
page; each field is taken from the most precise statement present (JSON-LD, then Open Graph and
`<meta>`, then plain markup), so a page that lacks one still yields the others. Times without a
zone are not trusted (a bare "2026-11-30 09:00" could be any of 24 hours).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import html as lxml_html

_ARTICLE_TYPES = {
    "newsarticle",
    "article",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "blogposting",
    "opinionnewsarticle",
    "reviewnewsarticle",
}
_DATE_META = (
    "article:published_time",
    "og:published_time",
    "pubdate",
    "publishdate",
    "date",
    "dc.date",
    "dcterms.created",
    "parsely-pub-date",
    "sailthru.date",
)


@dataclass(frozen=True)
class PageMetadata:
    title: str | None = None
    canonical_url: str | None = None
    published_at: datetime | None = None
    author: str | None = None
    lang: str | None = None
    amp_url: str | None = None
    paywalled: bool = False  # JSON-LD isAccessibleForFree: false (what publishers tell search engines)


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time with a zone, as UTC; None for anything else."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def _json_ld_objects(tree: Any) -> Iterator[dict[str, Any]]:
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content() or "")
        except ValueError:
            continue  # a broken block must not hide the page's other metadata
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                yield node
                if "@graph" in node:
                    stack.append(node["@graph"])


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(k).lower() for k in kinds if k}


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _url(value: Any, base: str | None) -> str | None:
    if isinstance(value, dict):
        value = value.get("@id") or value.get("url")
    if not isinstance(value, str) or not value.strip():
        return None
    absolute = urljoin(base or "", value.strip())
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _same_site(url: str | None, page_url: str | None) -> str | None:
    """A canonical URL is believed only on the page's own site: a page claiming another
    publisher's URL as its canonical would otherwise take over that article's id and dedup key."""
    if url is None or page_url is None:
        return url
    host, page_host = urlsplit(url).hostname or "", urlsplit(page_url).hostname or ""
    return url if host.split(".")[-2:] == page_host.split(".")[-2:] else None


def _meta(tree: Any, *names: str) -> str | None:
    for name in names:
        for attribute in ("property", "name", "itemprop"):
            found = tree.xpath(
                f'//meta[translate(@{attribute},"ABCDEFGHIJKLMNOPQRSTUVWXYZ","abcdefghijklmnopqrstuvwxyz")="{name}"]/@content'
            )
            if found and str(found[0]).strip():
                return str(found[0]).strip()
    return None


def page_metadata(tree: Any, page_url: str | None) -> PageMetadata:
    article = next((node for node in _json_ld_objects(tree) if _types(node) & _ARTICLE_TYPES), {})
    canonical_href = tree.xpath('//link[translate(@rel,"CANONICAL","canonical")="canonical"]/@href')
    canonical = (
        (_url(canonical_href[0], page_url) if canonical_href else None)
        or _url(_meta(tree, "og:url"), page_url)
        or _url(article.get("url") or article.get("mainEntityOfPage"), page_url)
    )
    amp = tree.xpath('//link[@rel="amphtml"]/@href')

    published = parse_time(article.get("datePublished"))
    if published is None:
        published = parse_time(_meta(tree, *_DATE_META))
    if published is None:
        for value in tree.xpath("//article//time/@datetime | //time[@pubdate]/@datetime | //time/@datetime"):
            published = parse_time(str(value))
            if published is not None:
                break

    authors = _names(article.get("author"))
    author = ", ".join(dict.fromkeys(a.strip() for a in authors if a.strip())) or None
    if author is None:
        meta_author = _meta(tree, "author", "article:author", "parsely-author")
        author = meta_author if meta_author and not meta_author.startswith("http") else None

    title = article.get("headline") if isinstance(article.get("headline"), str) else None
    title = title or _meta(tree, "og:title", "twitter:title") or _page_title(tree)

    lang_attr = tree.xpath("/html/@lang")
    lang = (str(lang_attr[0]) if lang_attr else "") or str(article.get("inLanguage") or "") or None
    return PageMetadata(
        title=title or None,
        canonical_url=_same_site(canonical, page_url),
        published_at=published,
        author=author[:300] if author else None,
        lang=lang.split("-")[0].lower()[:16] if lang else None,
        amp_url=_url(amp[0], page_url) if amp else None,
        paywalled=str(article.get("isAccessibleForFree", "")).strip().lower() in ("false", "0", "no"),
    )


def _page_title(tree: Any) -> str | None:
    """The page's own headline: its one <h1> when <title> contains it (titles carry the site's
    name: "Fed holds rates | Daily Wire"), else <title> without a trailing site name."""
    found = tree.xpath("//title/text()")
    page_title = " ".join(str(found[0]).split()) if found else ""
    headings = [" ".join(h.text_content().split()) for h in tree.xpath("//h1")]
    headings = [h for h in headings if h]
    if len(headings) == 1 and (not page_title or headings[0].casefold() in page_title.casefold()):
        return headings[0]
    for separator in (" | ", " - ", " \u2014 ", " \u2013 ", " :: "):  # bar, hyphen, em and en dash
        head, sep, _site = page_title.rpartition(separator)
        if sep and len(head.split()) >= 3:
            return head
    return page_title or (headings[0] if headings else None)


def parse_html(content: bytes) -> Any:
    """An lxml tree; raises ValueError when the bytes are not a document lxml can read."""
    try:
        return lxml_html.document_fromstring(content)
    except (ValueError, lxml_html.etree.ParserError) as exc:
        raise ValueError(f"not an HTML document: {exc}") from exc
