"""'Seen before?' across restarts: a small SQLite file of article keys.

An article counts as seen under its canonical-URL key and its source-plus-headline key, so the
same story re-fetched with a different URL spelling, or re-published without a URL, is produced
once. Keys are remembered only after Kafka confirmed delivery: a crash between the two re-sends
(harmless: the database write is idempotent) rather than losing the item.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from connectors.news_item import NewsItem, dedup_keys


class DedupStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, article_id TEXT NOT NULL)")

    @staticmethod
    def keys(item: NewsItem) -> list[str]:
        return dedup_keys(item.source, item.url, item.title)

    def seen(self, item: NewsItem) -> bool:
        return self.seen_keys(self.keys(item))

    def seen_keys(self, keys: Sequence[str]) -> bool:
        marks = ",".join("?" * len(keys))
        return (
            self._conn.execute(f"SELECT 1 FROM seen WHERE key IN ({marks}) LIMIT 1", keys).fetchone()
            is not None
        )

    def remember(self, items: Iterable[NewsItem]) -> None:
        self.remember_keys((key, item.id) for item in items for key in self.keys(item))

    def remember_keys(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(key, id) pairs: discovered links are remembered under their URL before any article id exists."""
        rows = list(pairs)
        if not rows:
            return
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR IGNORE INTO seen (key, article_id) VALUES (?, ?)", rows)

    def close(self) -> None:
        self._conn.close()
