"""robots.txt, honoured and cached per host (RFC 9309).

What a host's robots.txt says is asked once per `ttl_s` per host, through the same polite
fetcher as the pages (so the robots request counts toward the host's interval). The RFC's
rules for a file that cannot be read: a 4xx (no robots.txt) allows everything; a 5xx or an
unreachable host disallows everything for now — a site that is down must not be read as "crawl
anything" — and is asked again after `error_ttl_s`, sooner than a readable file.
A `Crawl-delay` for our user agent raises that host's interval in the fetcher.
"""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from dataclasses import dataclass
from urllib.parse import urlsplit

from connectors.fetch import FetchError, PoliteFetcher

_MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309: crawlers must parse at least 500 KiB


@dataclass
class _Rules:
    parser: urllib.robotparser.RobotFileParser | None  # None: a blanket rule (allow_all)
    allow_all: bool
    expires_at: float
    crawl_delay_s: float | None


class RobotsCache:
    def __init__(self, fetcher: PoliteFetcher, *, ttl_s: float = 3600.0, error_ttl_s: float = 300.0) -> None:
        self._fetcher = fetcher
        self._ttl_s = ttl_s
        self._error_ttl_s = error_ttl_s
        self._agent = fetcher.user_agent.split("/")[0].split()[0]
        self._rules: dict[str, _Rules] = {}
        self._lock = threading.Lock()
        self.requests = 0  # robots.txt fetches made (tests and metrics read it)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
        rules = self._rules_for(origin)
        if rules.parser is None:
            return rules.allow_all
        return rules.parser.can_fetch(self._agent, url)

    def crawl_delay(self, url: str) -> float | None:
        parts = urlsplit(url)
        return self._rules_for(f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}").crawl_delay_s

    def _rules_for(self, origin: str) -> _Rules:
        with self._lock:
            cached = self._rules.get(origin)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached
        rules = self._fetch(origin)
        with self._lock:
            self._rules[origin] = rules
        if rules.crawl_delay_s:
            self._fetcher.set_min_interval(urlsplit(origin).hostname or "", rules.crawl_delay_s)
        return rules

    def _fetch(self, origin: str) -> _Rules:
        self.requests += 1
        now = time.monotonic()
        try:
            result = self._fetcher.get(origin + "/robots.txt")
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return _Rules(None, True, now + self._ttl_s, None)
            return _Rules(None, False, now + self._error_ttl_s, None)
        if result.content is None:  # 304: what we had still holds
            with self._lock:
                previous = self._rules.get(origin)
            if previous is not None:
                previous.expires_at = now + self._ttl_s
                return previous
            return _Rules(None, True, now + self._ttl_s, None)
        text = result.content[:_MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(text.splitlines())
        parser.modified()  # can_fetch answers False for a parser it thinks was never read
        delay = parser.crawl_delay(self._agent)
        return _Rules(parser, True, now + self._ttl_s, float(delay) if delay is not None else None)
