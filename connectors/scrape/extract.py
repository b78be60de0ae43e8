"""Main text and metadata of one article page.

The body comes from trafilatura (navigation, related-article boxes, ads and comments removed;
measured against other extractors in bench/extraction_quality.py), the metadata from the page's
markup (`connectors.scrape.metadata`: JSON-LD, then Open Graph and <meta>, then <time>, <h1> and
<title>), and the scraper falls back to the link's hints (the feed's title, summary and time)
for whatever the page does not say.
A page whose text is too short to be an article (a paywall, a consent wall, a video page) is
reported `extracted=False`, so the caller publishes the hints and flags the item rather than
storing a cookie banner as news.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trafilatura

from connectors.scrape.metadata import PageMetadata, page_metadata, parse_html

_NOT_HTML_MAGIC = {
    b"%PDF": "PDF document",
    b"\x89PNG": "PNG image",
    b"\xff\xd8\xff": "JPEG image",
    b"GIF8": "GIF image",
    b"PK\x03\x04": "ZIP archive",
    b"RIFF": "RIFF media",
}
_HTML_TYPES = {"text/html", "application/xhtml+xml", ""}
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Extraction:
    extracted: bool
    title: str | None = None
    body: str = ""
    published_at: datetime | None = None
    canonical_url: str | None = None
    author: str | None = None
    lang: str | None = None
    reason: str | None = None  # why nothing (or too little) was extracted
    code: str | None = None  # the reason as a stable code

    def as_json(self, file: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = {} if file is None else {"file": file}
        record.update(
            title=self.title,
            body=self.body,
            published_at=self.published_at.isoformat() if self.published_at else None,
            canonical_url=self.canonical_url,
            lang=self.lang,
            extracted=self.extracted,
        )
        if self.author:
            record["author"] = self.author
        if self.reason:
            record["reason"] = self.reason
        return record


def not_html_reason(content: bytes, content_type: str = "") -> str | None:
    """Why these bytes are not an HTML page, or None when they may be one."""
    if content_type and content_type not in _HTML_TYPES and not content_type.startswith("text/"):
        return f"content type {content_type} is not HTML"
    for magic, kind in _NOT_HTML_MAGIC.items():
        if content.startswith(magic):
            return f"content is a {kind}, not HTML"
    head = content[:4096]
    if b"\x00" in head:
        return "content is binary, not HTML"
    if b"<" not in head and b"<" not in content[:65536]:
        return "content has no markup"
    return None


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _strip_title_line(body: str, title: str | None) -> str:
    """trafilatura keeps the page's <h1> as the first line; the item carries it as its title."""
    if not title or not body:
        return body
    first, _, rest = body.partition("\n")
    return rest.lstrip() if words(first) == words(title) else body


def _detect_lang(text: str) -> str | None:
    if len(words(text)) < 20:
        return None
    import py3langid  # loads its model (~0.2 s) on first use only

    lang, _score = py3langid.classify(text[:5000])
    return str(lang)


def extract_page(
    content: bytes, url: str | None = None, *, content_type: str = "", min_words: int = 40
) -> Extraction:
    """Extract one page; never raises on bad input (the reason is in the result)."""
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as exc:
            return Extraction(False, reason=f"broken gzip: {exc}", code="unreadable")
    refused = not_html_reason(content, content_type)
    if refused:
        return Extraction(False, reason=refused, code="not_html")
    try:
        tree = parse_html(content)
    except ValueError as exc:
        return Extraction(False, reason=str(exc), code="not_html")
    meta = page_metadata(tree, url)
    fields = _main_text(content, url, min_words)
    title = meta.title
    body = _drop_link_lines(_strip_title_line(str(fields.get("text") or "").strip(), title), tree)
    published = meta.published_at
    lang = meta.lang or _detect_lang(body)
    enough = len(words(body)) >= min_words and not meta.paywalled
    if meta.paywalled:
        reason: str | None = "the page says it is paywalled (JSON-LD isAccessibleForFree: false)"
    else:
        reason = None if enough else f"{len(words(body))} words of main text, fewer than {min_words}"
    return Extraction(
        extracted=enough,
        title=title,
        body=body if enough else "",
        published_at=published,
        canonical_url=meta.canonical_url,
        author=meta.author,
        lang=lang,
        reason=reason,
        code=None if enough else "paywalled" if meta.paywalled else "no_main_text",
    )


def _main_text(content: bytes, url: str | None, min_words: int) -> dict[str, Any]:
    """trafilatura in precision mode first (it drops boilerplate hardest); when that finds too
    little — old table layouts, pages without article markup — its balanced mode, which keeps
    more of the page rather than nothing."""
    fields: dict[str, Any] = {}
    for precise in (True, False):
        document = trafilatura.bare_extraction(
            content,
            url=url,
            # Metadata comes from connectors.scrape.metadata: trafilatura's own runs htmldate, which
            # cost 0.2 s per page here (9 s on its first call while dateparser loads its locales).
            with_metadata=False,
            include_comments=False,
            include_tables=False,
            # No deduplicate=True: its cache is process-wide, so a page scraped again (a link
            # redelivered after a crash, an AMP copy, a syndicated story) would come out empty.
            favor_precision=precise,
        )
        if isinstance(document, dict):
            fields = document
        else:
            fields = document.as_dict() if document is not None else {}
        if len(words(str(fields.get("text") or ""))) >= min_words:
            return fields
    return fields


def _drop_link_lines(body: str, tree: Any) -> str:
    """Lines that are exactly the text of a short link (a section menu trafilatura kept) go."""
    anchors = {
        " ".join(words(a.text_content())) for a in tree.xpath("//a") if 0 < len(words(a.text_content())) <= 6
    }
    kept = [line for line in body.split("\n") if " ".join(words(line)) not in anchors]
    return "\n".join(kept).strip()


def metadata_of(content: bytes, url: str | None = None) -> PageMetadata:
    return page_metadata(parse_html(content), url)
