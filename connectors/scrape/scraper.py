"""One link in, one outcome out: a news item, or a failure with a reason.

What goes wrong is sorted by whether trying again can help:
- final: robots.txt disallows the URL, 404/410, non-HTML content, a page over the size cap, an
  address the fetcher refuses — recorded with the reason, never retried;
- transient: 429, 5xx, timeouts, connection and DNS failures — retried here with exponential
  backoff (a 429's or 503's Retry-After is honoured, capped), then dead-lettered with the last
  reason so an operator can replay them once the site is back.
A page without extractable main text is not a failure: it is published with the listing's title
and summary and `extracted=False`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.fetch import FetchError, PoliteFetcher
from connectors.news_item import NewsItem, make_item
from connectors.scrape.extract import extract_page
from connectors.scrape.links import Link
from connectors.scrape.robots import RobotsCache

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@dataclass(frozen=True)
class ScrapePolicy:
    tries: int = 3
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0  # a Retry-After of a day must not park a scraper thread for a day
    min_words: int = 40


@dataclass(frozen=True)
class ScrapeOutcome:
    link: Link
    item: NewsItem | None
    code: str  # "extracted" / "not_extracted" for published items, else the failure's code
    reason: str
    attempts: int
    seconds: float
    retryable: bool = False  # a failure that may succeed later (it was retried and gave up)

    @property
    def published(self) -> bool:
        return self.item is not None


class Scraper:
    def __init__(
        self,
        fetcher: PoliteFetcher,
        robots: RobotsCache,
        policy: ScrapePolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._fetcher = fetcher
        self._robots = robots
        self._policy = policy
        self._sleep = sleep

    def scrape(self, link: Link) -> ScrapeOutcome:
        started = time.monotonic()

        def failed(error: FetchError, attempts: int) -> ScrapeOutcome:
            return ScrapeOutcome(
                link, None, error.code, str(error), attempts, time.monotonic() - started, error.retryable
            )

        try:
            allowed = self._robots.allowed(link.url)
        except FetchError as exc:  # the robots request itself was refused (a private address)
            return failed(exc, 0)
        if not allowed:
            return ScrapeOutcome(
                link,
                None,
                "robots_disallowed",
                f"robots.txt of {link.host} disallows this URL",
                0,
                time.monotonic() - started,
            )
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self._fetcher.get(link.url, accept=HTML_TYPES)
                break
            except FetchError as exc:
                if not exc.retryable or attempt >= self._policy.tries:
                    return failed(exc, attempt)
                delay = min(self._policy.backoff_max_s, self._policy.backoff_s * 2 ** (attempt - 1))
                if exc.retry_after_s is not None:
                    delay = max(delay, min(exc.retry_after_s, self._policy.max_retry_after_s))
                self._sleep(delay)
        page = extract_page(
            result.content or b"",
            result.url,
            content_type=result.content_type,
            min_words=self._policy.min_words,
        )
        if page.code == "not_html":
            return ScrapeOutcome(
                link, None, "not_html", page.reason or "not HTML", attempt, time.monotonic() - started
            )
        title = page.title or link.title
        if not title:
            return ScrapeOutcome(
                link,
                None,
                "no_title",
                "neither the page nor the listing gives a title",
                attempt,
                time.monotonic() - started,
            )
        try:
            item = make_item(
                source=link.source,
                title=title,
                body=page.body if page.extracted else link.summary,
                url=page.canonical_url or result.url,
                published_at=page.published_at or link.published_at,
                lang=page.lang or link.lang or "en",
                extracted=page.extracted,
                author=page.author,
            )
        except ValueError as exc:
            return ScrapeOutcome(link, None, "invalid_item", str(exc), attempt, time.monotonic() - started)
        code = "extracted" if page.extracted else "not_extracted"
        return ScrapeOutcome(link, item, code, page.reason or "", attempt, time.monotonic() - started)
