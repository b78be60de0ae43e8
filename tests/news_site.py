"""A small news website of several publishers on loopback addresses, for the scraper's tests and bench.

Each publisher (host) serves article pages in varied real-world layouts — navigation, related
boxes, comments, JSON-LD, Open Graph only, `<main>` with `<time>`, an old table layout, AMP
versions, a paywall stub, a video page — plus what goes wrong in the wild: a redirect chain, a
robots.txt that disallows a section (or sets a crawl-delay), a 429 then success, a 500 forever, a
page slower than the timeout, 404 and 410, a PDF, a page over the size cap. It also serves an
RSS feed and a news sitemap index listing the pages. Every request is logged with the host and a
monotonic time, so a test can prove what was (not) requested and how far apart.

Article text is built from SEntFiN headlines in `../shared/data` (real financial sentences), so
every page's true body is known and extraction can be scored on it.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import html
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kafka.partitioner.default import murmur2

LAYOUTS = ("jsonld_classic", "og_div_soup", "main_time", "table_legacy", "comments_heavy")


@dataclass
class Page:
    host: str
    path: str
    title: str
    paragraphs: list[str]
    published_at: datetime
    author: str
    layout: str
    noise: list[str] = field(default_factory=list)  # text on the page that is not the article
    kind: str = "article"  # article | paywall | video | amp
    canonical_path: str | None = None

    @property
    def body(self) -> str:
        return "\n".join(self.paragraphs)


@dataclass(frozen=True)
class Expected:
    """What the scraper must make of a listed URL: an item (extracted or not) or a failure code."""

    url: str
    outcome: str  # extracted | not_extracted | <failure code>
    canonical: str | None = None


def sentences(data_dir: Path) -> list[str]:
    with (data_dir / "sentfin" / "train.csv").open(encoding="utf-8", newline="") as handle:
        titles = [row["Title"].strip() for row in csv.DictReader(handle)]
    return [t if t.endswith((".", "!", "?")) else t + "." for t in titles if len(t.split()) >= 6]


def hosts_on_distinct_partitions(count: int, partitions: int) -> list[str]:
    """Loopback addresses whose Kafka keys land on different partitions (the producer's murmur2),
    so that two scrapers in one group each own some hosts."""
    chosen: dict[int, str] = {}
    for last in range(2, 250):
        host = f"127.0.0.{last}"
        partition = (murmur2(host.encode()) & 0x7FFFFFFF) % partitions
        chosen.setdefault(partition, host)
        if len(chosen) == min(count, partitions):
            break
    return list(chosen.values())[:count]


class NewsSite:
    """Build with `NewsSite(data_dir, hosts)`, then `start()`; `stop()` shuts the servers."""

    def __init__(
        self, data_dir: Path, hosts: list[str], *, pages_per_host: int = 9, seed: int = 7, faults: bool = True
    ) -> None:
        self.hosts = hosts
        self.rng = random.Random(seed)
        self.pool = sentences(data_dir)
        self.rng.shuffle(self.pool)
        self._cursor = 0
        self.pages: dict[tuple[str, str], Page] = {}
        self.requests: list[tuple[str, str, float, str, str]] = []  # address, path, monotonic, UA, Host
        self.robots: dict[str, str | None] = {}
        self.ports: dict[str, int] = {}
        self.big_page_bytes = 2 * 1024 * 1024
        self._servers: list[ThreadingHTTPServer] = []
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], int] = {}
        self.expected: list[Expected] = []
        self._build(pages_per_host, faults)

    # --- content ----------------------------------------------------------------------------
    def _take(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            out.append(self.pool[self._cursor % len(self.pool)])
            self._cursor += 1
        return out

    def _article(self, host: str, path: str, layout: str, index: int, kind: str = "article") -> Page:
        paragraphs = [" ".join(self._take(self.rng.randint(2, 3))) for _ in range(self.rng.randint(4, 6))]
        page = Page(
            host=host,
            path=path,
            title=self._take(1)[0].rstrip("."),
            paragraphs=paragraphs,
            published_at=datetime(2026, 11, 1, 8, tzinfo=UTC)
            + timedelta(hours=7 * index, minutes=13 * index),
            author=self.rng.choice(["Jane Roe", "Arjun Mehta", "Li Wei", "Maria Rossi"]),
            layout=layout,
            noise=self._take(6),
            kind=kind,
        )
        self.pages[(host, path)] = page
        return page

    def _build(self, pages_per_host: int, faults: bool) -> None:
        index = 0
        for number, host in enumerate(self.hosts):
            # Publisher 0 disallows a section, publisher 1 asks for a crawl-delay, publisher 2 has no
            # robots.txt (404: everything allowed), the rest allow everything explicitly.
            self.robots[host] = (
                [
                    "User-agent: *\nDisallow: /private/\n",
                    "User-agent: finsent\nCrawl-delay: 1\nDisallow: /members/\n\n"
                    "User-agent: *\nDisallow: /\n",
                    None,
                ][number]
                if number < 3 and faults
                else "User-agent: *\nAllow: /\n"
            )
            for i in range(pages_per_host):
                index += 1
                path = f"/markets/{number}-{i}-story"
                self._article(host, path, LAYOUTS[(i + number) % len(LAYOUTS)], index)
                self.expected.append(Expected(self.url(host, path), "extracted", self.url(host, path)))
        if not faults:  # articles only (the throughput bench)
            return
        first, second = self.hosts[0], self.hosts[1 % len(self.hosts)]
        # An AMP version listed by the feed, its canonical page by the sitemap: one article, two links.
        amp = self._article(first, "/markets/amp-story", "jsonld_classic", index + 1)
        amp_copy = Page(**{**amp.__dict__, "path": "/amp/markets/amp-story", "kind": "amp", "layout": "amp"})
        amp_copy.canonical_path = amp.path
        self.pages[(first, amp_copy.path)] = amp_copy
        self.expected.append(Expected(self.url(first, amp_copy.path), "extracted", self.url(first, amp.path)))
        self.expected.append(Expected(self.url(first, amp.path), "extracted", self.url(first, amp.path)))
        self._article(first, "/premium/paywalled", "paywall", index + 2, kind="paywall")
        self.expected.append(
            Expected(
                self.url(first, "/premium/paywalled"), "not_extracted", self.url(first, "/premium/paywalled")
            )
        )
        self._article(second, "/video/briefing", "video", index + 3, kind="video")
        self.expected.append(
            Expected(
                self.url(second, "/video/briefing"), "not_extracted", self.url(second, "/video/briefing")
            )
        )
        self._article(second, "/markets/redirected-story", "main_time", index + 4)
        self.expected.append(
            Expected(self.url(second, "/go/1"), "extracted", self.url(second, "/markets/redirected-story"))
        )
        self._article(first, "/markets/flaky-429", "og_div_soup", index + 5)
        self.expected.append(
            Expected(
                self.url(first, "/markets/flaky-429"), "extracted", self.url(first, "/markets/flaky-429")
            )
        )
        self.expected += [
            Expected(self.url(first, "/private/insider"), "robots_disallowed"),
            Expected(self.url(second, "/markets/broken-500"), "server_error"),
            Expected(self.url(second, "/markets/slow"), "timeout"),
            Expected(self.url(first, "/markets/missing"), "not_found"),
            Expected(self.url(first, "/markets/removed"), "gone"),
            Expected(self.url(second, "/reports/annual.pdf"), "not_html"),
            Expected(self.url(first, "/markets/huge"), "too_large"),
        ]

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.ports.get(host, 0)}{path}"

    # --- listings ---------------------------------------------------------------------------
    def feed_urls(self) -> list[str]:
        """The first host's feed lists the first half of the expectations (the AMP link among them)."""
        return [e.url for e in self.expected if "/amp/" in e.url or self._listed_by_feed(e.url)]

    def sitemap_urls(self) -> list[str]:
        amp_canonical = [e.url for e in self.expected if e.url.endswith("/markets/amp-story")]
        rest = [e.url for e in self.expected if "/amp/" not in e.url and not self._listed_by_feed(e.url)]
        overlap = [u for u in self.feed_urls()[:2] if "/amp/" not in u]  # listed by both: discovered once
        return amp_canonical + rest + overlap

    def _listed_by_feed(self, url: str) -> bool:
        position = [e.url for e in self.expected].index(url)
        return position % 2 == 0 and not url.endswith("/markets/amp-story")

    def hint(self, url: str) -> tuple[str, str]:
        path = "/" + url.split("/", 3)[3]
        page = self.pages.get((url.split("/")[2].split(":")[0], path))
        if page is None:
            return f"Listing title for {path}", "Listing summary."
        return page.title, f"Summary: {page.paragraphs[0][:160]}"

    def rss(self) -> bytes:
        items = []
        for url in self.feed_urls():
            title, summary = self.hint(url)
            items.append(
                f"<item><title>{html.escape(title)}</title><link>{html.escape(url)}</link>"
                f"<description>{html.escape(summary)}</description>"
                "<pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate></item>"
            )
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Loopback Wire</title>'
            f"<language>en</language>{''.join(items)}</channel></rss>"
        ).encode()

    def sitemap_index(self, host: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{self.url(host, '/sitemap-news.xml')}</loc></sitemap></sitemapindex>"
        ).encode()

    def news_sitemap(self) -> bytes:
        entries = []
        for url in self.sitemap_urls():
            title, _ = self.hint(url)
            entries.append(
                f"<url><loc>{html.escape(url)}</loc><news:news><news:publication><news:name>Loopback Times"
                "</news:name><news:language>en</news:language></news:publication>"
                "<news:publication_date>2026-11-30T10:00:00+00:00</news:publication_date>"
                f"<news:title>{html.escape(title)}</news:title></news:news></url>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">' + "".join(entries) + "</urlset>"
        ).encode()

    # --- rendering --------------------------------------------------------------------------
    def render(self, page: Page) -> bytes:
        return render_page(page, self.url(page.host, page.canonical_path or page.path)).encode()

    # --- serving ----------------------------------------------------------------------------
    def start(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one segment: written apart, with Nagle's algorithm on, each
            # response waits out the client's delayed ACK (40 ms on Linux).
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                host = self.server.server_address[0]
                with site._lock:
                    site.requests.append(
                        (
                            host,
                            self.path,
                            time.monotonic(),
                            self.headers.get("User-Agent", ""),
                            self.headers.get("Host", ""),
                        )
                    )
                    hits = site._hits[(host, self.path)] = site._hits.get((host, self.path), 0) + 1
                status, headers, body = site.respond(host, self.path, hits)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status == 200 and self.path == "/markets/slow":
                    time.sleep(3)  # past the scraper's timeout
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that timed out or went away mid-response is part of the tests

        for host in self.hosts:
            server = Server((host, 0), Handler)
            server.daemon_threads = True
            self.ports[host] = int(server.server_address[1])
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        # Expectations were built before the ports were known: give them their real URLs.
        self.expected = [
            Expected(self._with_port(e.url), e.outcome, self._with_port(e.canonical) if e.canonical else None)
            for e in self.expected
        ]

    def _with_port(self, url: str) -> str:
        host = url.split("/")[2].split(":")[0]
        return url.replace(f"http://{host}:0/", f"http://{host}:{self.ports[host]}/", 1)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def respond(self, host: str, path: str, hits: int) -> tuple[int, dict[str, str], bytes]:
        html_type = {"Content-Type": "text/html; charset=utf-8"}
        if path == "/robots.txt":
            rules = self.robots.get(host)
            if rules is None:
                return 404, html_type, b"<h1>Not found</h1>"
            return 200, {"Content-Type": "text/plain"}, rules.encode()
        if path == "/feed.xml":
            return 200, {"Content-Type": "application/rss+xml"}, self.rss()
        if path == "/sitemap_index.xml":
            return 200, {"Content-Type": "application/xml"}, self.sitemap_index(host)
        if path == "/sitemap-news.xml":
            return 200, {"Content-Type": "application/xml"}, self.news_sitemap()
        if path == "/go/1":
            return 301, {"Location": "/go/2", **html_type}, b""
        if path == "/go/2":
            return 302, {"Location": self.url(host, "/markets/redirected-story"), **html_type}, b""
        if path == "/markets/flaky-429" and hits == 1:
            return 429, {"Retry-After": "1", **html_type}, b"<h1>Too many requests</h1>"
        if path == "/markets/broken-500":
            return 500, html_type, b"<h1>Internal error</h1>"
        if path == "/markets/missing":
            return 404, html_type, b"<h1>Not found</h1>"
        if path == "/markets/removed":
            return 410, html_type, b"<h1>Gone</h1>"
        if path == "/reports/annual.pdf":
            return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.7\n" + b"0" * 5000
        if path == "/markets/huge":
            return (
                200,
                html_type,
                b"<html><body>" + b"<p>padding</p>" * (self.big_page_bytes // 14) + b"</body></html>",
            )
        if path == "/markets/slow":
            return 200, html_type, self.render(next(iter(self.pages.values())))
        page = self.pages.get((host, path))
        if page is None:
            return 404, html_type, b"<h1>Not found</h1>"
        return 200, html_type, self.render(page)

    def requested(self, host: str | None = None) -> Iterator[tuple[str, str, float, str, str]]:
        with self._lock:
            entries = list(self.requests)
        return (e for e in entries if host is None or e[0] == host)

    def save_pages(self, folder: Path, gzip_every: int = 3) -> dict[str, Page]:
        """Every article page as a file (some gzipped), for `finsent extract`; name -> page."""
        folder.mkdir(parents=True, exist_ok=True)
        saved = {}
        for number, page in enumerate(p for p in self.pages.values() if p.kind != "amp"):
            content = self.render(page)
            name = f"page-{number:03d}.html"
            if number % gzip_every == 2:
                name += ".gz"
                content = gzip.compress(content)
            (folder / name).write_bytes(content)
            saved[name] = page
        return saved


# --- layouts -------------------------------------------------------------------------------
def _nav() -> str:
    sections = ["Home", "Markets", "Companies", "Economy", "Opinion", "Tech", "Personal Finance", "Video"]
    return (
        "<nav class='site-nav'><ul>"
        + "".join(f"<li><a href='/{s.lower()}'>{s}</a></li>" for s in sections)
        + "</ul></nav>"
    )


def _footer() -> str:
    links = [
        "About us",
        "Contact",
        "Careers",
        "Terms of use",
        "Privacy policy",
        "Cookie settings",
        "Advertise",
    ]
    return (
        "<footer><ul>" + "".join(f"<li><a href='/x'>{s}</a></li>" for s in links) + "</ul>"
        "<p>Copyright 2026 Loopback Media Group. All rights reserved.</p></footer>"
    )


def _related(noise: list[str]) -> str:
    return (
        "<aside class='related-articles'><h3>Related stories</h3><ul>"
        + "".join(
            f"<li><a href='/markets/related-{i}'>{html.escape(t)}</a></li>" for i, t in enumerate(noise[:3])
        )
        + "</ul></aside>"
    )


def _comments(noise: list[str]) -> str:
    return (
        "<section id='comments' class='comments'><h3>3 comments</h3>"
        + "".join(
            f"<div class='comment'><span class='user'>reader{i}</span><p>{html.escape(t)}</p></div>"
            for i, t in enumerate(noise[3:6])
        )
        + "</section>"
    )


def _paras(page: Page) -> str:
    return "".join(f"<p>{html.escape(p)}</p>" for p in page.paragraphs)


def render_page(page: Page, canonical: str) -> str:
    title = html.escape(page.title)
    when = page.published_at.isoformat()
    json_ld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": page.title,
            "datePublished": when,
            "author": [{"@type": "Person", "name": page.author}],
            "isAccessibleForFree": page.kind != "paywall",
        }
    )
    head_common = (
        f"<meta charset='utf-8'><title>{title} | Loopback Times</title>"
        f"<link rel='canonical' href='{canonical}'>"
    )
    json_ld_tag = f"<script type='application/ld+json'>{json_ld}</script>"
    if page.kind == "paywall":
        return (
            f"<html lang='en'><head>{head_common}{json_ld_tag}</head><body>"
            f"{_nav()}<article><h1>{title}</h1><p>{html.escape(page.paragraphs[0].split('.')[0])}.</p>"
            "<div class='paywall'><h2>Subscribe to continue reading</h2>"
            "<a href='/subscribe'>Subscribe now</a></div>"
            f"</article>{_footer()}</body></html>"
        )
    if page.kind == "video":
        return (
            f"<html lang='en'><head>{head_common}<meta property='og:type' content='video.other'>"
            f"<meta property='og:title' content='{title}'>"
            f"<meta property='article:published_time' content='{when}'></head><body>{_nav()}"
            f"<main><h1>{title}</h1><video src='/v/briefing.mp4' controls></video>"
            "<p class='caption'>Watch the briefing.</p></main>"
            f"{_footer()}</body></html>"
        )
    if page.layout == "amp":
        return (
            f"<!doctype html><html amp lang='en'><head>{head_common}"
            f"<script type='application/ld+json'>{json_ld}</script></head><body>"
            f"<header><a href='/'>Loopback Times</a></header>"
            f"<article><h1>{title}</h1>{_paras(page)}</article>"
            "</body></html>"
        )
    if page.layout == "jsonld_classic":
        return (
            f"<html lang='en-US'><head>{head_common}<link rel='amphtml' href='/amp{page.path}'>"
            f"<script type='application/ld+json'>{json_ld}</script></head><body>{_nav()}"
            "<div class='breadcrumb'><a href='/'>Home</a> &gt; <a href='/markets'>Markets</a></div>"
            f"<article><h1>{title}</h1><div class='byline'>By {html.escape(page.author)}</div>"
            f"<time datetime='{when}'>{page.published_at:%d %B %Y}</time>{_paras(page)}{_related(page.noise)}"
            f"</article><div class='ad' id='ad-slot-1'>Advertisement</div>{_comments(page.noise)}{_footer()}"
            "</body></html>"
        )
    if page.layout == "og_div_soup":
        return (
            f"<html><head>{head_common}<meta property='og:title' content='{title}'>"
            f"<meta property='og:url' content='{canonical}'>"
            f"<meta property='article:published_time' content='{when}'>"
            f"<meta property='article:author' content='{html.escape(page.author)}'></head><body>"
            "<div id='cookie-banner'>We use cookies to improve your experience. "
            "<button>Accept all</button></div>"
            f"{_nav()}<div class='container'><div class='row'><div class='col-8'><div class='story-body'>"
            f"<h1 class='headline'>{title}</h1>{_paras(page)}</div></div>"
            "<div class='col-4 sidebar'><h4>Most read</h4><ol>"
            + "".join(f"<li><a href='/m/{i}'>{html.escape(t)}</a></li>" for i, t in enumerate(page.noise[:3]))
            + f"</ol></div></div></div>{_footer()}</body></html>"
        )
    if page.layout == "main_time":
        half = len(page.paragraphs) // 2
        first = "".join(f"<p>{html.escape(p)}</p>" for p in page.paragraphs[:half])
        rest = "".join(f"<p>{html.escape(p)}</p>" for p in page.paragraphs[half:])
        return (
            f"<html lang='en-GB'><head>{head_common}<meta name='author' content='{html.escape(page.author)}'>"
            f"</head><body>{_nav()}<main><h1>{title}</h1><p class='meta'><time datetime='{when}'>"
            f"{page.published_at:%H:%M %d/%m/%Y}</time></p>{first}"
            "<div class='newsletter'><h4>Get the morning briefing</h4><form><input type='email'>"
            f"<button>Sign up</button></form></div>{rest}</main>"
            f"{_related(page.noise)}{_footer()}</body></html>"
        )
    if page.layout == "table_legacy":
        body = "<br><br>".join(html.escape(p) for p in page.paragraphs)
        return (
            f"<html><head>{head_common}<meta name='pubdate' content='{when}'></head><body>"
            "<table width='100%'><tr><td class='leftnav' width='160'>"
            + "".join(f"<a href='/s/{i}'>Section {i}</a><br>" for i in range(8))
            + f"</td><td class='content'><font size='5'><b>{title}</b></font><br><br>"
            f"<font size='2'>{body}</font></td><td class='ads' width='120'>Sponsored links</td></tr></table>"
            f"{_footer()}</body></html>"
        )
    # comments_heavy
    return (
        f"<html lang='en'><head>{head_common}{json_ld_tag}</head><body>"
        f"{_nav()}<div class='article-wrapper'><article class='post'><header><h1>{title}</h1></header>"
        f"<div class='entry-content'>{_paras(page)}</div></article>"
        f"<div class='share'>Share on Twitter Share on LinkedIn Email</div>{_comments(page.noise)}"
        f"{_comments(page.noise[::-1])}</div>{_footer()}</body></html>"
    )
