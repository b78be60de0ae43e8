"""The news item (schema version 1): identity, normalisation and validation.

Producers and the worker share this one definition, so what a source emits is exactly what the
worker accepts. Validation never raises on bad input: it returns a `Rejection` with a stable
reason code (for metrics and the DLQ header) and a human-readable reason.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.companies import company_tickers
from connectors.entities import EntityListError, check_entity_list

SCHEMA_VERSION = 1

_TAG = re.compile(r"<[^>]*>")
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid)$", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Plain Unicode text: scripts and tags removed, entities decoded, controls dropped, spaces folded.

    Applied twice it changes nothing, so the worker can re-apply it to what producers sent.
    """
    text = _SCRIPT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return _SPACE.sub(" ", text).strip()


def normalise_title(title: str) -> str:
    """The key for 'same headline': case, punctuation and spacing do not matter."""
    text = clean_text(title).casefold()
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"[^\w$]+", " ", text)
    return _SPACE.sub(" ", text).strip()


def canonical_url(url: str) -> str:
    """One spelling per article URL: lower-case host, no fragment, no tracking parameters."""
    parts = urlsplit(url.strip())
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)
    )
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _url_key(url: str) -> str:
    return _digest("url:" + canonical_url(url))


def _headline_key(source: str, title: str) -> str:
    return _digest(f"title:{source.strip().casefold()}:{normalise_title(title)}")


def article_id(source: str, url: str | None, title: str) -> str:
    """Stable id: the canonical URL's hash, or source plus normalised title when there is no URL."""
    return _url_key(url) if url else _headline_key(source, title)


def url_dedup_key(url: str) -> str:
    """The seen-before key of a URL alone (a discovered link, a scraped page's canonical URL)."""
    return _url_key(url)


def dedup_keys(source: str, url: str | None, title: str) -> list[str]:
    """Every key under which this article counts as already seen (same URL, or same headline)."""
    return [_headline_key(source, title), *([_url_key(url)] if url else [])]


def extract_tickers(*texts: str) -> list[str]:
    """Upper-case cashtags ($AAPL, $BRK.B) in order of first appearance, without repeats.

    `build_item` adds the tickers of company names it recognises (`connectors.companies`)."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in _CASHTAG.finditer(text or ""):
            seen.setdefault(match.group(1).upper(), None)
    return list(seen)


def article_text(title: str, body: str) -> str:
    """What the model reads of an article: the headline, then the body when there is one. Every
    reader of stored or replayed articles (labels, distillation texts) builds it here, so a model
    never learns from a text shaped otherwise than the worker classifies."""
    return f"{title}. {body}" if body else title


class NewsItem(BaseModel):
    """One article as it travels on `news.raw`."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    source: str = Field(min_length=1, max_length=200)
    url: str | None = Field(default=None, max_length=4000)
    title: str = Field(min_length=1)
    body: str = ""
    published_at: datetime
    fetched_at: datetime
    lang: str = Field(default="en", max_length=16)
    tickers: list[str] = Field(default_factory=list, max_length=200)
    # Scraped items only: whether the body is the page's extracted main text (False: the page had
    # none, e.g. a paywall, and the body is the listing's summary); None for items not scraped.
    extracted: bool | None = None
    author: str | None = Field(default=None, max_length=300)
    # Entities to judge the item for, as the producer names them; None: the worker recognises them.
    entities: list[str] | None = None

    @field_validator("published_at", "fetched_at", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise ValueError("must be an ISO 8601 string")
        if parsed.tzinfo is None:
            raise ValueError("must carry a time zone")
        return parsed.astimezone(UTC)

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        for ticker in value:
            if not re.fullmatch(r"[A-Z]{1,6}(\.[A-Z]{1,2})?", ticker):
                raise ValueError(f"not an upper-case ticker: {ticker[:20]!r}")
        return value

    @property
    def text(self) -> str:
        return article_text(self.title, self.body)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode()


def make_item(
    *,
    source: str,
    title: str,
    body: str = "",
    url: str | None = None,
    published_at: datetime | None = None,
    fetched_at: datetime | None = None,
    lang: str = "en",
    extracted: bool | None = None,
    author: str | None = None,
    tickers: Sequence[str] = (),
) -> NewsItem:
    """Build a normalised item from what a source found; raises ValueError when it is unusable."""
    title = clean_text(title)
    body = clean_text(body)
    if not title:
        raise ValueError("item has no title")
    now = datetime.now(UTC)
    return NewsItem(
        id=article_id(source, url, title),
        source=source.strip(),
        url=canonical_url(url) if url else None,
        title=title,
        body=body,
        published_at=published_at or now,
        fetched_at=fetched_at or now,
        lang=lang,
        tickers=list(dict.fromkeys([*tickers, *extract_tickers(title, body), *company_tickers(title, body)])),
        extracted=extracted,
        author=clean_text(author)[:300] or None if author else None,
    )


@dataclass(frozen=True)
class Rejection:
    """Why a message cannot be stored: a code for machines and a sentence for people."""

    code: str
    reason: str


_ENVELOPE_BYTES = 64 * 1024  # every field but title and body, escaped, with room to spare


def parse_message(value: bytes | None, *, max_title_chars: int, max_body_chars: int) -> NewsItem | Rejection:
    """Decode and validate one `news.raw` value; never raises on bad input."""
    if value is None:
        return Rejection("empty", "message has no value (tombstone)")
    # Larger than any valid item can be (every character of title and body escaped as \uXXXX,
    # plus the other fields): refused before it is decoded, so a 10 MB body costs no 10 MB copies.
    max_bytes = 6 * (max_title_chars + max_body_chars) + _ENVELOPE_BYTES
    if len(value) > max_bytes:
        return Rejection(
            "message_too_large", f"message has {len(value)} bytes; a valid item has at most {max_bytes}"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("invalid_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        data = json.loads(text)
    except RecursionError:
        return Rejection("invalid_json", "JSON nested too deeply")
    except ValueError as exc:
        return Rejection("invalid_json", f"value is not JSON: {exc}"[:300])
    if not isinstance(data, dict):
        return Rejection("not_an_object", f"value is JSON {type(data).__name__}, expected an object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        return Rejection("unsupported_schema_version", f"schema_version {version!r} is not {SCHEMA_VERSION}")
    for field, limit in (("title", max_title_chars), ("body", max_body_chars)):
        field_value = data.get(field)
        if isinstance(field_value, str) and len(field_value) > limit:
            return Rejection("field_too_large", f"{field} has {len(field_value)} characters, limit {limit}")
    if data.get("entities") is not None:
        try:
            data["entities"] = check_entity_list(data["entities"])
        except EntityListError as exc:
            return Rejection("invalid_entities", str(exc))
    try:
        item = NewsItem.model_validate(data)
    except (ValidationError, RecursionError) as exc:
        return Rejection("schema_violation", _describe(exc))
    title, body = clean_text(item.title), clean_text(item.body)
    if not title:
        return Rejection("schema_violation", "title is empty once markup and control characters are removed")
    if title != item.title or body != item.body:
        item = item.model_copy(update={"title": title, "body": body})
    return item


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()[:5]
        ]
        return "; ".join(parts)[:500]
    return "JSON nested too deeply"
