"""Scraping end to end on the real broker: a feed and a news sitemap discovered into `news.links`,
two `finsent scrape` processes in one group (one SIGKILLed mid-run and restarted) publishing to
`news.raw` and `news.links.dlq`, against the loopback news site.

One run is shared by the assertions below: it is the expensive part (about a minute).
"""

from __future__ import annotations

import collections
import itertools
import json
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.scrape.extract import words
from connectors.scrape.links import Link, parse_link
from pipeline.service.scraper import LINK_HEADER
from pipeline.settings import Settings
from tests.conftest import FINSENT, REPO_ROOT, Stack, free_port, wait_for
from tests.kafka_helpers import read_all
from tests.news_site import NewsSite, hosts_on_distinct_partitions

INTERVAL_S = 0.4
TRIES = 3
LISTINGS = ("/feed.xml", "/sitemap_index.xml", "/sitemap-news.xml")


@dataclass
class ScrapeRun:
    site: NewsSite
    settings: Settings
    links: list[Link]
    outcomes: dict[str, set[tuple[str, str]]]  # link URL -> {("item", id) | ("failed", code)}
    items: dict[str, dict[str, object]]  # link URL -> the item's JSON
    failures: dict[str, dict[str, str]]  # link URL -> headers of its dead letter
    raw_messages: int
    rediscovery: dict[str, int]
    scraper_logs: list[str]
    killed_after_items: int
    metrics: str


class Scraper:
    def __init__(self, stack: Stack, log: Path, metrics_port: int = 0) -> None:
        self.log = log
        self._handle = log.open("ab")
        env = {**stack.env, "FINSENT_SCRAPER_METRICS_PORT": str(metrics_port)}
        self.proc = subprocess.Popen(
            [FINSENT, "scrape"], env=env, cwd=REPO_ROOT, stdout=self._handle, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self._handle.close()
        return int(self.proc.returncode)


def _headers(record: object) -> dict[str, str]:
    return {k: v.decode() for k, v in (getattr(record, "headers", None) or [])}


def _collect(settings: Settings) -> tuple[list[Link], list[object], list[object]]:
    links = [
        p for p in (parse_link(r.value) for r in read_all(settings.kafka_bootstrap, settings.topic_links))
    ]
    raw = read_all(settings.kafka_bootstrap, settings.topic_raw)
    dlq = read_all(settings.kafka_bootstrap, settings.topic_links_dlq)
    return [link for link in links if isinstance(link, Link)], raw, dlq


pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def scrape_run(
    kafka_bootstrap: str, data_dir_module: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScrapeRun]:
    hosts = hosts_on_distinct_partitions(4, 4)
    site = NewsSite(data_dir_module, hosts, pages_per_host=6)
    site.start()
    home = tmp_path_factory.mktemp("scrape")
    stack = Stack(
        kafka=kafka_bootstrap,
        database_url=f"sqlite:///{home / 'unused.db'}",
        home=home / "home",
        overrides={
            "fetch_allow_hosts": hosts,
            "fetch_min_interval_s": INTERVAL_S,
            "fetch_timeout_s": 1.0,
            "fetch_max_total_s": 3.0,
            "fetch_max_bytes": 400_000,
            "scrape_tries": TRIES,
            "scrape_backoff_s": 0.2,
            "scrape_backoff_max_s": 0.5,
            "scrape_batch_links": 3,
            "scrape_handover_s": 1.5,  # longer than the site's crawl-delay of 1 s
            "scraper_metrics_port": 0,
            "ingest_metrics_port": 0,
        },
    )
    settings = stack.settings()
    feed = json.loads(stack.finsent("discover", "--feed", site.url(hosts[0], "/feed.xml"), "--once").stdout)
    sitemap = json.loads(
        stack.finsent("discover", "--sitemap", site.url(hosts[1], "/sitemap_index.xml"), "--once").stdout
    )
    again = json.loads(stack.finsent("discover", "--feed", site.url(hosts[0], "/feed.xml"), "--once").stdout)
    expected_links = len(set(site.feed_urls()) | set(site.sitemap_urls()))
    assert feed["produced"] + sitemap["produced"] == expected_links, (feed, sitemap)

    logs = home / "logs"
    logs.mkdir()
    first = Scraper(stack, logs / "scraper-a.log")
    metrics_port = free_port()
    second = Scraper(stack, logs / "scraper-b.log", metrics_port)
    scrapers = [first, second]
    try:

        def both_committed() -> bool:
            # Killing A before it committed a batch would test nothing of A's (and on a loaded
            # machine B can finish everything before A2 joins): wait until each has committed once.
            return (
                all(
                    s.log.exists() and '"scrape batch committed"' in s.log.read_text(errors="replace")
                    for s in (first, second)
                )
                and len(read_all(kafka_bootstrap, settings.topic_raw)) >= 6
            )

        wait_for(both_committed, 120, "a committed batch from each scraper", 0.5)
        killed_after = len(read_all(kafka_bootstrap, settings.topic_raw))
        first.kill()  # mid-run: its uncommitted links go to the next owner of its partitions
        scrapers.append(Scraper(stack, logs / "scraper-a2.log"))

        def accounted() -> bool:
            _links, raw, dlq = _collect(settings)
            done = {_headers(r).get(LINK_HEADER) for r in raw} | {
                parse_link(r.value).url
                for r in dlq
                if isinstance(parse_link(r.value), Link)  # type: ignore[union-attr]
            }
            return len(done) >= expected_links

        wait_for(accounted, 240, "every link scraped or recorded", 1.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            metrics_text = response.read().decode()
    finally:
        for scraper in scrapers[1:]:
            scraper.stop()
        first.stop()
    links, raw, dlq = _collect(settings)
    outcomes: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    items: dict[str, dict[str, object]] = {}
    failures: dict[str, dict[str, str]] = {}
    for record in raw:
        url = _headers(record)[LINK_HEADER]
        outcomes[url].add(("item", record.key.decode()))
        items[url] = json.loads(record.value)
    for record in dlq:
        link = parse_link(record.value)
        assert isinstance(link, Link)
        headers = _headers(record)
        outcomes[link.url].add(("failed", headers["reason_code"]))
        failures[link.url] = headers
    yield ScrapeRun(
        site=site,
        settings=settings,
        links=links,
        outcomes=dict(outcomes),
        items=items,
        failures=failures,
        raw_messages=len(raw),
        rediscovery=again,
        scraper_logs=[s.log.read_text(errors="replace") for s in scrapers],
        killed_after_items=killed_after,
        metrics=metrics_text,
    )
    site.stop()


def test_every_link_ends_as_exactly_one_item_or_one_failure_with_the_right_reason(
    scrape_run: ScrapeRun,
) -> None:
    site = scrape_run.site
    listed = {link.url for link in scrape_run.links}
    assert listed == {e.url for e in site.expected}  # the feed and the sitemap found every page once
    for expected in site.expected:
        outcome = scrape_run.outcomes.get(expected.url)
        assert outcome is not None and len(outcome) == 1, (expected.url, outcome)  # one id, never two
        kind, value = next(iter(outcome))
        if expected.outcome in ("extracted", "not_extracted"):
            assert kind == "item", (expected.url, value, scrape_run.failures.get(expected.url))
            item = scrape_run.items[expected.url]
            assert item["extracted"] is (expected.outcome == "extracted"), expected.url
            assert item["url"] == expected.canonical
        else:
            assert (kind, value) == ("failed", expected.outcome), expected.url


def test_items_carry_the_pages_text_and_metadata(scrape_run: ScrapeRun) -> None:
    site = scrape_run.site
    checked = 0
    for url, item in scrape_run.items.items():
        host, path = url.split("/")[2].split(":")[0], "/" + url.split("/", 3)[3]
        page = site.pages.get((host, path))
        if page is None or page.kind not in ("article", "amp"):
            continue
        truth, got = collections.Counter(words(page.body)), collections.Counter(words(str(item["body"])))
        assert sum((truth & got).values()) / sum(truth.values()) >= 0.97, url
        assert item["title"] == page.title and item["published_at"].startswith(
            page.published_at.isoformat()[:19]
        )  # type: ignore[union-attr]
        checked += 1
    assert checked >= len(site.hosts) * 6
    amp = [e for e in site.expected if e.url.endswith("/amp-story")]
    ids = {next(iter(scrape_run.outcomes[e.url]))[1] for e in amp}
    assert len(amp) == 2 and len(ids) == 1  # the AMP link and the canonical link are one article


def test_failures_are_dead_lettered_with_reason_and_retried_only_when_that_can_help(
    scrape_run: ScrapeRun,
) -> None:
    finals = {h["reason_code"]: h["final"] for h in scrape_run.failures.values()}
    assert finals["not_found"] == finals["gone"] == finals["robots_disallowed"] == "true"
    assert finals["not_html"] == finals["too_large"] == "true"
    assert finals["server_error"] == finals["timeout"] == "false"
    assert all(h["reason"] for h in scrape_run.failures.values())
    requests = collections.Counter(path for _h, path, *_ in scrape_run.site.requested())
    assert requests["/markets/broken-500"] >= TRIES and requests["/markets/slow"] >= TRIES
    # Never retried: once, or twice when the link was redelivered after the kill.
    assert 1 <= requests["/markets/missing"] <= 2 and 1 <= requests["/markets/removed"] <= 2
    assert requests["/markets/flaky-429"] >= 2  # the 429, then the page


def test_no_disallowed_url_is_requested_and_every_request_identifies_the_scraper(
    scrape_run: ScrapeRun,
) -> None:
    requested = list(scrape_run.site.requested())
    assert not [r for r in requested if r[1].startswith(("/private/", "/members/"))]
    assert all(r[3].startswith("finsent/") for r in requested)


def test_no_host_gets_two_requests_closer_than_its_interval_across_both_scrapers(
    scrape_run: ScrapeRun,
) -> None:
    site = scrape_run.site
    crawl_delay_host = site.hosts[1]  # its robots.txt asks our agent for 1 s
    for host in site.hosts:
        times = sorted(r[2] for r in site.requested(host) if r[1] not in LISTINGS)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        floor = 1.0 if host == crawl_delay_host else INTERVAL_S
        assert len(gaps) >= 5, host
        assert min(gaps) >= floor - 0.1, (host, min(gaps))  # send jitter on a loaded machine


def test_both_scrapers_worked_and_a_kill_lost_nothing(scrape_run: ScrapeRun) -> None:
    batches = [log.count('"scrape batch committed"') for log in scrape_run.scraper_logs]
    killed, survivor = batches[0], batches[1]
    assert killed > 0 and survivor > 0, batches
    assert scrape_run.killed_after_items >= 6
    # Re-deliveries after the kill are the same articles under the same ids (checked per link above).
    assert scrape_run.raw_messages >= len(scrape_run.items)


def test_the_scraper_reports_pages_by_outcome_fetch_latency_and_host_intervals(scrape_run: ScrapeRun) -> None:
    samples = {}
    for line in scrape_run.metrics.splitlines():
        if line.startswith("finsent_scrape_") and " " in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    extracted = samples.get('finsent_scrape_pages_total{outcome="extracted"}', 0)
    assert extracted > 0 and samples.get("finsent_scrape_fetch_seconds_count", 0) >= extracted
    intervals = {k: v for k, v in samples.items() if k.startswith("finsent_scrape_host_interval_seconds{")}
    assert intervals and set(intervals.values()) <= {INTERVAL_S, 1.0}


def test_discovery_remembers_links_across_restarts(scrape_run: ScrapeRun) -> None:
    assert scrape_run.rediscovery["produced"] == 0
    assert scrape_run.rediscovery["duplicates"] == scrape_run.rediscovery["read"] > 0


def test_ingest_file_maps_a_downloaded_datasets_columns(kafka_bootstrap: str, tmp_path: Path) -> None:
    stack = Stack(
        kafka=kafka_bootstrap, database_url=f"sqlite:///{tmp_path / 'x.db'}", home=tmp_path / "home"
    )
    path = tmp_path / "downloaded.csv"
    path.write_text(
        "headline,date,stock\n"
        '"Tesla beats estimates","2020-07-17 09:30",TSLA\n'
        '"No date format known",someday,F\n'
        '"Ford cuts guidance",07/18/2020,F\n'
    )
    result = stack.finsent(
        "ingest",
        "--file",
        str(path),
        "--map",
        "headline=title,date=published_at,stock=tickers",
        "--timezone",
        "America/New_York",
        "--no-dedup",
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "read": 2,
        "produced": 2,
        "duplicates": 0,
        "rejected": 1,
    }
    assert "rejected downloaded.csv:row 3: unrecognised date 'someday'" in result.stderr
    items = [json.loads(r.value) for r in read_all(kafka_bootstrap, stack.settings().topic_raw)]
    assert [(i["title"], i["tickers"][0], i["published_at"]) for i in items] == [
        ("Tesla beats estimates", "TSLA", "2020-07-17T13:30:00Z"),
        ("Ford cuts guidance", "F", "2020-07-18T04:00:00Z"),
    ]
