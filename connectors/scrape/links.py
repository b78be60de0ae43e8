"""The discovered link (schema version 1): what travels on `news.links`.

A link carries what the listing said about the article (its title, summary and time) as hints:
the scraper falls back to them when the page has no usable metadata or no extractable text, so
an article behind a paywall is still published with its headline rather than lost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.news_item import Rejection, canonical_url, clean_text

LINK_SCHEMA_VERSION = 1
_MAX_LINK_BYTES = 256 * 1024  # a URL plus a summary; anything larger is not a link


class Link(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = LINK_SCHEMA_VERSION
    url: str = Field(min_length=8, max_length=4000)
    source: str = Field(min_length=1, max_length=200)
    title: str = ""  # hint from the listing
    summary: str = ""  # hint from the listing
    published_at: datetime | None = None  # hint from the listing
    lang: str | None = Field(default=None, max_length=16)
    discovered_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @field_validator("published_at", "discovered_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone")
        return value.astimezone(UTC) if value is not None else None

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def key(self) -> bytes:
        """Kafka key: the host, so one scraper at a time owns a host's politeness."""
        return self.host.encode()

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode()


def make_link(
    *,
    url: str,
    source: str,
    title: str = "",
    summary: str = "",
    published_at: datetime | None = None,
    lang: str | None = None,
) -> Link:
    """A normalised link; raises ValueError when the URL is unusable."""
    try:
        return Link(
            url=canonical_url(url),
            source=source.strip()[:200] or "unknown",
            title=clean_text(title)[:2000],
            summary=clean_text(summary)[:20_000],
            published_at=published_at,
            lang=lang[:16] if lang else None,
        )
    except ValidationError as exc:
        raise ValueError(f"unusable link {url[:200]!r}: {exc.errors()[0]['msg']}") from exc


def parse_link(value: bytes | None) -> Link | Rejection:
    """Decode one `news.links` value; never raises on bad input."""
    if value is None:
        return Rejection("empty", "message has no value (tombstone)")
    if len(value) > _MAX_LINK_BYTES:
        return Rejection("message_too_large", f"link message has {len(value)} bytes, limit {_MAX_LINK_BYTES}")
    try:
        data: Any = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejection("invalid_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")
    except (ValueError, RecursionError) as exc:
        return Rejection("invalid_json", f"value is not JSON: {exc}"[:300])
    if not isinstance(data, dict):
        return Rejection("not_an_object", f"value is JSON {type(data).__name__}, expected an object")
    if data.get("schema_version") != LINK_SCHEMA_VERSION:
        return Rejection(
            "unsupported_schema_version",
            f"schema_version {data.get('schema_version')!r} is not {LINK_SCHEMA_VERSION}",
        )
    try:
        return Link.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        return Rejection(
            "schema_violation", f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"[:500]
        )
