"""Filling a database with classified items at chosen times, for the alert tests and the bench."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import Engine

from connectors.db.writer import ArticleRow, PredictionRow, write_batch

_ids = itertools.count()


@dataclass(frozen=True)
class Item:
    at: datetime
    sentiment: str = "neutral"
    topic: str = "Markets"
    tickers: list[str] = field(default_factory=list)


def article(item: Item, model_version: str = "v1") -> ArticleRow:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    probs[item.sentiment] = 0.8
    n = next(_ids)
    return ArticleRow(
        id=f"alert-test-{n:07d}",
        source="test",
        url=None,
        title=f"item {n} {item.sentiment} {item.topic}",
        body="",
        published_at=item.at,
        fetched_at=item.at + timedelta(seconds=5),
        lang="en",
        tickers=list(item.tickers),
        predictions=[
            PredictionRow("sentiment", item.sentiment, 0.8, probs, model_version),
            PredictionRow("topic", item.topic, 0.9, {item.topic: 0.9}, model_version),
        ],
    )


def store(engine: Engine, items: Iterable[Item], chunk: int = 500) -> int:
    rows = [article(item) for item in items]
    for start in range(0, len(rows), chunk):
        write_batch(engine, rows[start : start + chunk], [])
    return len(rows)


class Hooks:
    """A webhook receiver: records (headers, raw body); `status` is what it answers, after
    `delay_s` (a slow receiver; `in_flight` counts the requests it is holding)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay_s = 0.0
        self.in_flight = 0
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    def start(self) -> None:
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hooks.status < 300:
                    hooks.received.append((dict(self.headers.items()), body))
                hooks.in_flight += 1
                try:
                    time.sleep(hooks.delay_s)
                    self.send_response(hooks.status)
                    self.end_headers()
                except OSError:  # the sender is gone (killed while waiting)
                    pass
                finally:
                    hooks.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/finsent"
