"""News sources and the polite fetcher, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.dedup import DedupStore
from connectors.fetch import FetchError, FetchPolicy, FetchRefused, PoliteFetcher
from connectors.news_item import make_item
from connectors.sources.feed import FeedSource
from connectors.sources.files import FileSource
from connectors.sources.http_api import ApiConfig, JsonApiSource

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><language>en</language>
<item><title>$AAPL &lt;b&gt;beats&lt;/b&gt; estimates</title>
<link>https://news.test/a?utm_source=rss</link>
<description>&lt;p&gt;Apple results &amp;amp; guidance&lt;/p&gt;</description>
<pubDate>Mon, 02 Mar 2026 10:00:00 GMT</pubDate></item>
<item><title>Fed holds rates</title><link>https://news.test/b</link></item>
<item><title></title><link>https://news.test/empty</link></item>
</channel></rss>"""

API = {
    "data": {
        "articles": [
            {
                "attributes": {"headline": "Oil jumps as $XOM rallies", "time": "2026-03-02T11:00:00Z"},
                "links": {"self": "https://api.test/1"},
            },
            {
                "attributes": {"headline": "", "time": "2026-03-02T11:00:00Z"},
                "links": {"self": "https://api.test/2"},
            },
            {
                "attributes": {"headline": "No zone", "time": "2026-03-02T11:00:00"},
                "links": {"self": "https://api.test/3"},
            },
        ]
    }
}


class _Handler(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, str], float]] = []

    def do_GET(self) -> None:
        _Handler.requests.append((self.path, dict(self.headers), time.monotonic()))
        if self.path == "/feed.xml":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            self._send(RSS, "application/rss+xml", {"ETag": '"v1"'})
        elif self.path == "/api.json":
            self._send(json.dumps(API).encode(), "application/json")
        elif self.path == "/big":
            self._send(b"x" * 50_000, "text/plain")
        elif self.path == "/redirect-out":
            self.send_response(302)
            self.send_header("Location", "http://10.0.0.1/secret")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def _send(self, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _fetcher(**kw: object) -> PoliteFetcher:
    policy = {"allow_hosts": frozenset({"127.0.0.1"}), "min_interval_s": 0.0, **kw}
    return PoliteFetcher(FetchPolicy(**policy))  # type: ignore[arg-type]


def test_loopback_and_private_addresses_are_refused_unless_allowlisted(server: str) -> None:
    strict = PoliteFetcher(FetchPolicy())
    with pytest.raises(FetchRefused, match="non-public"):
        strict.get(f"{server}/feed.xml")
    for url in ("http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"):
        with pytest.raises(FetchRefused):
            strict.check_url(url)
    assert _fetcher().get(f"{server}/feed.xml").status == 200


def test_redirect_to_a_private_address_is_refused(server: str) -> None:
    with pytest.raises(FetchRefused, match=r"10\.0\.0\.1"):
        _fetcher().get(f"{server}/redirect-out")


def test_response_size_is_capped(server: str) -> None:
    with pytest.raises(FetchError, match="limit"):
        _fetcher(max_bytes=10_000).get(f"{server}/big")


def test_per_host_rate_limit_spaces_requests(server: str) -> None:
    fetcher = _fetcher(min_interval_s=0.3)
    for _ in range(3):
        fetcher.get(f"{server}/api.json")
    times = [t for _, _, t in _Handler.requests]
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(times))


def test_feed_items_are_normalised_and_a_304_yields_nothing(server: str) -> None:
    errors: list[tuple[str, str]] = []
    source = FeedSource(f"{server}/feed.xml", _fetcher(), on_error=lambda w, r: errors.append((w, r)))
    items = list(source.items())
    assert [i.title for i in items] == ["$AAPL beats estimates", "Fed holds rates"]
    first = items[0]
    assert first.source == "Wire" and first.url == "https://news.test/a" and first.tickers == ["AAPL"]
    assert (
        first.body == "Apple results & guidance"
        and first.published_at.isoformat() == "2026-03-02T10:00:00+00:00"
    )
    assert len(errors) == 1 and "no title" in errors[0][1]
    assert list(source.items()) == []  # ETag sent back, server answered 304
    assert _Handler.requests[-1][1].get("If-None-Match") == '"v1"'


def test_json_api_paths_come_from_config(server: str, tmp_path: Path) -> None:
    config_path = tmp_path / "api.yaml"
    config_path.write_text(
        f"url: {server}/api.json\nsource: example\nitems_path: data.articles\n"
        "fields: {title: attributes.headline, link: links.self, published_at: attributes.time}\n"
    )
    errors: list[tuple[str, str]] = []
    items = list(
        JsonApiSource(
            ApiConfig.load(config_path), _fetcher(), on_error=lambda w, r: errors.append((w, r))
        ).items()
    )
    assert [(i.title, i.tickers, i.url) for i in items] == [
        ("Oil jumps as $XOM rallies", ["XOM"], "https://api.test/1")
    ]
    assert len(errors) == 2


def test_file_sources_jsonl_and_multiline_csv_with_rate(tmp_path: Path) -> None:
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text(
        json.dumps(
            {"title": "A $MSFT deal", "url": "https://x.test/1", "published_at": "2026-01-01T00:00:00Z"}
        )
        + "\n{broken\n"
        + json.dumps({"text": "Text column works"})
        + "\n"
    )
    errors: list[tuple[str, str]] = []
    items = list(FileSource(jsonl, on_error=lambda w, r: errors.append((w, r))).items())
    assert [i.title for i in items] == ["A $MSFT deal", "Text column works"] and errors[0][
        0
    ] == "items.jsonl:2"
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text('text,label\n"line one\nline two",1\nsecond,0\nthird,2\n')
    began = time.monotonic()
    rows = list(FileSource(csv_path, rate_per_s=10).items())
    assert [r.title for r in rows] == ["line one line two", "second", "third"]
    assert time.monotonic() - began >= 0.25


def test_dedup_survives_a_restart_and_matches_on_url_or_headline(tmp_path: Path) -> None:
    store = DedupStore(tmp_path / "dedup.sqlite")
    original = make_item(source="wire", title="Fed holds rates", url="https://n.test/a?utm_source=x")
    store.remember([original])
    store.close()
    reopened = DedupStore(tmp_path / "dedup.sqlite")
    assert reopened.seen(make_item(source="wire", title="Another title", url="https://N.test/a"))
    assert reopened.seen(make_item(source="WIRE", title="fed holds rates!", url=None))
    assert not reopened.seen(make_item(source="other", title="Fed holds rates", url=None))
