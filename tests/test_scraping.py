"""robots.txt, address pinning, sitemaps, one-link scraping and file column mapping, on real local servers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.errors import UserInputError
from connectors.fetch import FetchError, FetchPolicy, FetchRefused, PoliteFetcher
from connectors.scrape.links import make_link, parse_link
from connectors.scrape.robots import RobotsCache
from connectors.scrape.scraper import ScrapePolicy, Scraper
from connectors.scrape.sitemap import SitemapSource, parse_sitemap
from connectors.sources.files import FileColumns, FileSource
from tests.news_site import NewsSite

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.5"]


@pytest.fixture(scope="module")
def site(data_dir_module: Path) -> Iterator[NewsSite]:
    site = NewsSite(data_dir_module, HOSTS, pages_per_host=3)
    site.start()
    yield site
    site.stop()


def _fetcher(interval: float = 0.0, **kw: object) -> PoliteFetcher:
    policy = {"allow_hosts": frozenset(HOSTS), "min_interval_s": interval, "timeout_s": 1.0, **kw}
    return PoliteFetcher(FetchPolicy(**policy))  # type: ignore[arg-type]


def test_robots_rules_are_honoured_cached_and_set_the_crawl_delay(site: NewsSite) -> None:
    fetcher = _fetcher(0.1)
    robots = RobotsCache(fetcher)
    first, second, third = HOSTS
    assert not robots.allowed(site.url(first, "/private/insider"))
    assert robots.allowed(site.url(first, "/markets/0-0-story"))
    # The second publisher names our agent: its own group applies (crawl-delay 1, /members/ closed),
    # not the catch-all group that closes everything to other robots.
    assert robots.allowed(site.url(second, "/markets/1-0-story"))
    assert not robots.allowed(site.url(second, "/members/x"))
    assert fetcher.interval(second) == 1.0 and fetcher.interval(first) == 0.1
    assert robots.allowed(site.url(third, "/anything"))  # robots.txt is a 404: everything allowed
    for _ in range(3):
        robots.allowed(site.url(first, "/markets/0-1-story"))
    robots_requests = [r for r in site.requested() if r[1] == "/robots.txt"]
    assert robots.requests == 3 and len(robots_requests) == 3
    assert all(r[3].startswith("finsent/") for r in robots_requests)


def test_a_robots_txt_that_errors_disallows_for_now(site: NewsSite) -> None:
    fetcher = _fetcher()
    site.robots["127.0.0.5"] = None
    robots = RobotsCache(fetcher)
    original = site.respond

    def failing(host: str, path: str, hits: int) -> tuple[int, dict[str, str], bytes]:
        if path == "/robots.txt":
            return 503, {}, b"down"
        return original(host, path, hits)

    site.respond = failing  # type: ignore[method-assign]
    try:
        assert not robots.allowed(site.url("127.0.0.5", "/markets/2-0-story"))
    finally:
        site.respond = original  # type: ignore[method-assign]


def test_the_connection_goes_to_the_address_that_was_checked(site: NewsSite) -> None:
    """A name resolved once for the check and once more by the HTTP client could answer a public
    address to the first and a private one to the second (DNS rebinding)."""
    calls: list[str] = []

    def resolver(host: str) -> list[str]:
        calls.append(host)
        return ["127.0.0.2"] if host == "news.test" else []

    port = site.ports["127.0.0.2"]
    fetcher = PoliteFetcher(FetchPolicy(allow_hosts=frozenset({"127.0.0.2"}), min_interval_s=0), resolver)
    result = fetcher.get(
        f"http://news.test:{port}/go-nowhere-but-404/robots.txt".replace("/go-nowhere-but-404", "")
    )
    assert result.status == 200 and b"Disallow: /private/" in (result.content or b"")
    assert calls == ["news.test"]  # resolved exactly once for the request
    assert any(r[4] == f"news.test:{port}" for r in site.requested("127.0.0.2"))  # the site saw its own name
    strict = PoliteFetcher(FetchPolicy(min_interval_s=0), resolver)
    with pytest.raises(FetchRefused, match="non-public"):
        strict.get(f"http://news.test:{port}/robots.txt")


def test_fetch_errors_say_whether_a_retry_can_help(site: NewsSite) -> None:
    fetcher = _fetcher()
    first = HOSTS[0]
    cases = {"/markets/missing": ("not_found", False), "/markets/removed": ("gone", False)}
    for path, (code, retryable) in cases.items():
        with pytest.raises(FetchError) as caught:
            fetcher.get(site.url(first, path))
        assert (caught.value.code, caught.value.retryable) == (code, retryable)
    with pytest.raises(FetchError) as slow:
        fetcher.get(site.url(HOSTS[1], "/markets/slow"))
    assert slow.value.code == "timeout" and slow.value.retryable
    with pytest.raises(FetchError) as big:
        _fetcher(max_bytes=100_000).get(site.url(first, "/markets/huge"))
    assert big.value.code == "too_large"


def test_one_link_each_outcome(site: NewsSite) -> None:
    slept: list[float] = []
    fetcher = _fetcher(max_bytes=400_000)
    scraper = Scraper(
        fetcher,
        RobotsCache(fetcher),
        ScrapePolicy(tries=3, backoff_s=0.05, backoff_max_s=0.1),
        sleep=slept.append,
    )
    first = HOSTS[0]
    by_url = {e.url: e for e in site.expected}
    for path in (
        "/markets/flaky-429",
        "/private/insider",
        "/markets/missing",
        "/markets/huge",
        "/premium/paywalled",
        "/amp/markets/amp-story",
    ):
        title, summary = site.hint(site.url(first, path))
        outcome = scraper.scrape(
            make_link(url=site.url(first, path), source="Loopback", title=title, summary=summary)
        )
        expected = by_url[site.url(first, path)]
        assert outcome.code == expected.outcome, (path, outcome.reason)
        if expected.canonical:
            assert outcome.item is not None and outcome.item.url == expected.canonical
    assert 1.0 in slept  # the 429's Retry-After: 1 beat the 0.05 s backoff
    assert not any(r[1] == "/private/insider" for r in site.requested())
    paywalled = scraper.scrape(
        make_link(
            url=site.url(first, "/premium/paywalled"), source="Loopback", summary="Listing summary text."
        )
    )
    assert paywalled.item is not None and paywalled.item.extracted is False
    assert paywalled.item.body == "Listing summary text."


def test_links_validate_and_bad_link_messages_are_rejected_with_a_reason() -> None:
    link = make_link(url="HTTPS://News.Test/a?utm_source=x#top", source="wire", title="<b>Fed</b> holds")
    assert link.url == "https://news.test/a" and link.title == "Fed holds" and link.key == b"news.test"
    assert parse_link(link.to_json_bytes()) == link
    assert parse_link(b"{").code == "invalid_json"  # type: ignore[union-attr]
    assert parse_link(b'{"schema_version": 1, "url": "ftp://x/y", "source": "s"}').code == "schema_violation"  # type: ignore[union-attr]
    assert parse_link(None).code == "empty"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unusable link"):
        make_link(url="javascript:alert(1)", source="s")


def test_news_sitemaps_and_indexes(site: NewsSite) -> None:
    errors: list[tuple[str, str]] = []
    source = SitemapSource(
        site.url(HOSTS[1], "/sitemap_index.xml"), _fetcher(), on_error=lambda w, r: errors.append((w, r))
    )
    links = list(source.links())
    assert [link.url for link in links] == site.sitemap_urls() and not errors
    assert all(link.source == "Loopback Times" and link.lang == "en" for link in links)
    assert links[0].published_at is not None and links[0].title
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol2;</loc></url></urlset>'
    )
    with pytest.raises(Exception, match=r"(?i)entit"):
        parse_sitemap(bomb, "http://x/")
    with pytest.raises(ValueError, match="not <urlset>"):
        parse_sitemap(b"<html></html>", "http://x/")


def test_file_columns_map_and_dates_in_common_formats(tmp_path: Path) -> None:
    path = tmp_path / "download.csv"
    path.write_text(
        "headline,date,stock,summary\n"
        '"Tesla beats estimates",07/17/2020,TSLA,"Deliveries rose"\n'
        '"Ford cuts guidance","Jul 18, 2020 2:30 PM","F; GM","Margins fell"\n'
        '"Bad date row",yesterday,AAPL,x\n'
        ",2020-07-19,MSFT,no headline\n"
        '"Epoch row",1595203200,"[\'brk-b\']",y\n'
    )
    errors: list[tuple[str, str]] = []
    columns = FileColumns.from_mapping("headline=title,date=published_at,stock=tickers,summary=body")
    items = list(FileSource(path, columns=columns, on_error=lambda w, r: errors.append((w, r))).items())
    assert [i.title for i in items] == ["Tesla beats estimates", "Ford cuts guidance", "Epoch row"]
    assert items[0].published_at.isoformat() == "2020-07-17T00:00:00+00:00" and items[0].tickers[0] == "TSLA"
    assert items[1].published_at.isoformat() == "2020-07-18T14:30:00+00:00" and items[1].tickers[:2] == [
        "F",
        "GM",
    ]
    assert items[1].body == "Margins fell" and items[2].tickers[0] == "BRK.B"
    assert [w for w, _r in errors] == ["download.csv:row 4", "download.csv:row 5"]
    assert "unrecognised date" in errors[0][1] and "no title" in errors[1][1]
    with pytest.raises(UserInputError, match="no column 'stok'"):
        list(FileSource(path, columns=FileColumns.from_mapping("stok=tickers")).items())
    with pytest.raises(UserInputError, match="not one of"):
        FileColumns.from_mapping("headline=headline")
    started = time.monotonic()
    day_first = list(FileSource(path, columns=columns, day_first=True, on_error=lambda w, r: None).items())
    assert time.monotonic() - started < 30 and len(day_first) == 2  # 07/17 is no day-first date
