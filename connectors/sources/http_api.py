"""A generic JSON HTTP API poller: where the list of articles and each field live is configuration.

Paths are dotted (`data.articles`, `attributes.headline`); a config file (JSON or YAML) names
them, so a new provider needs no code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from connectors.fetch import PoliteFetcher
from connectors.news_item import NewsItem
from connectors.scrape.links import Link
from connectors.sources import ErrorHandler, entries_to_items, entries_to_links, ignore_errors


@dataclass(frozen=True)
class ApiConfig:
    url: str
    source: str
    items_path: str = ""  # empty: the response itself is the list
    title: str = "title"
    body: str = "body"
    link: str = "url"
    published_at: str = "published_at"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ApiConfig:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(data, dict) or "url" not in data or "source" not in data:
            raise ValueError(f"{path}: an API config needs at least 'url' and 'source'")
        fields = dict(data.get("fields") or {})
        return cls(
            url=str(data["url"]),
            source=str(data["source"]),
            items_path=str(data.get("items_path", "")),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            **{k: str(v) for k, v in fields.items() if k in ("title", "body", "link", "published_at")},
        )


def dig(data: Any, path: str) -> Any:
    """Follow a dotted path through dicts (and list indexes); None where it leads nowhere."""
    current = data
    for part in [p for p in path.split(".") if p]:
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


class JsonApiSource:
    def __init__(
        self, config: ApiConfig, fetcher: PoliteFetcher, *, on_error: ErrorHandler = ignore_errors
    ) -> None:
        self.config = config
        self.fetcher = fetcher
        self.on_error = on_error

    def _entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        result = self.fetcher.get(self.config.url, headers=self.config.headers)
        if result.not_modified or result.content is None:
            return
        try:
            payload = json.loads(result.content)
        except ValueError as exc:
            self.on_error(self.config.url, f"response is not JSON: {exc}")
            return
        entries = dig(payload, self.config.items_path)
        if not isinstance(entries, list):
            self.on_error(self.config.url, f"no list at items_path {self.config.items_path!r}")
            return
        for number, entry in enumerate(entries):
            where = f"{self.config.url} item {number}"
            try:
                published = dig(entry, self.config.published_at)
                parsed = datetime.fromisoformat(str(published).replace("Z", "+00:00")) if published else None
                if parsed is not None and parsed.tzinfo is None:
                    raise ValueError(f"published_at {published!r} has no time zone")
            except ValueError as exc:
                self.on_error(where, str(exc).splitlines()[0])
                continue
            link = dig(entry, self.config.link)
            yield (
                where,
                {
                    "source": self.config.source,
                    "title": str(dig(entry, self.config.title) or ""),
                    "body": str(dig(entry, self.config.body) or ""),
                    "url": str(link) if link else None,
                    "published_at": parsed,
                },
            )

    def items(self) -> Iterator[NewsItem]:
        return entries_to_items(self._entries(), self.on_error)

    def links(self) -> Iterator[Link]:
        return entries_to_links(self._entries(), self.on_error)
