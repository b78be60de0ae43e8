"""`finsent scrape`: the scraper workers, a consumer group on `news.links`.

Lifecycle of one batch (Quix-style checkpoint-then-commit):
1. poll up to `scrape_batch_links` links;
2. scrape them, one thread per host and each host's links in order, so hosts are fetched in
   parallel while no host sees two of our requests at once;
3. produce every outcome — items to `news.raw`, failures to `news.links.dlq` — and wait until
   Kafka acknowledged all of them;
4. only then commit the batch's offsets.
A scraper killed anywhere before 4 is given the same links again: it re-fetches and re-publishes,
and since an item's id is its page's canonical URL, a repeat is the same article (the database
write is idempotent), never a second one.

Links are keyed by host, so one partition — one scraper at a time — owns a host: per-host
politeness holds across any number of scraper processes. When partitions move (a scraper joins,
leaves or dies), the new owner requests nothing for `scrape_handover_s` (`hold_all_hosts`): the
previous owner may have fetched from a host a moment before, under a crawl-delay the new owner
has not read yet.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from connectors.dedup import DedupStore
from connectors.fetch import FetchPolicy, PoliteFetcher
from connectors.kafka_io import NewsProducer, OutRecord, TopicSpec, ensure_topics, make_producer, ping_kafka
from connectors.news_item import Rejection, url_dedup_key
from connectors.scrape.links import Link, parse_link
from connectors.scrape.robots import RobotsCache
from connectors.scrape.scraper import ScrapeOutcome, ScrapePolicy, Scraper
from pipeline.settings import Settings
from pipeline.telemetry import metrics

log = logging.getLogger(__name__)

LINK_HEADER = "finsent-link"  # on each news.raw item: the link it was scraped from


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        timeout_s=settings.fetch_timeout_s,
        max_bytes=settings.fetch_max_bytes,
        min_interval_s=settings.fetch_min_interval_s,
        allow_hosts=frozenset(h.lower() for h in settings.fetch_allow_hosts),
        user_agent=settings.fetch_user_agent,
        max_total_s=settings.fetch_max_total_s,
    )


def declare_scrape_topics(settings: Settings) -> None:
    ensure_topics(
        settings.kafka_bootstrap,
        [
            TopicSpec(settings.topic_links, settings.topic_partitions),
            TopicSpec(settings.topic_links_dlq, settings.topic_partitions),
            TopicSpec(settings.topic_raw, settings.topic_partitions),
        ],
        settings.kafka_max_message_bytes,
    )


class _HoldHostsOnAssign(ConsumerRebalanceListener):
    def __init__(self, fetcher: PoliteFetcher, hold_s: float) -> None:
        self._fetcher = fetcher
        self._hold_s = hold_s

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._fetcher.hold_all_hosts(self._hold_s)
        log.info("scraper partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


def failure_record(topic: str, record: ConsumerRecord, code: str, reason: str, final: bool) -> OutRecord:
    """The original link bytes, unchanged, with why it failed and whether a replay could help."""
    return OutRecord(
        topic,
        record.key,
        record.value if record.value is not None else b"",
        (
            ("reason_code", code.encode()),
            ("reason", reason[:1000].encode()),
            ("final", b"true" if final else b"false"),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("failed_at", datetime.now(UTC).isoformat().encode()),
        ),
    )


class ScraperService:
    """The consume → scrape → publish → commit loop; `run` returns once `stop` is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fetcher = PoliteFetcher(fetch_policy(settings))
        self.robots = RobotsCache(self.fetcher, ttl_s=settings.robots_ttl_s)
        self.scraper = Scraper(
            self.fetcher,
            self.robots,
            ScrapePolicy(
                tries=settings.scrape_tries,
                backoff_s=settings.scrape_backoff_s,
                backoff_max_s=settings.scrape_backoff_max_s,
                min_words=settings.scrape_min_words,
            ),
        )
        self.stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.scrape_concurrency, thread_name_prefix="finsent-scrape")

    def scrape_batch(self, links: Sequence[Link]) -> list[ScrapeOutcome]:
        """Outcomes in the links' order; hosts in parallel, each host's links one after another."""
        by_host: dict[str, list[int]] = defaultdict(list)
        for index, link in enumerate(links):
            by_host[link.host].append(index)

        def run_host(indexes: list[int]) -> list[tuple[int, ScrapeOutcome]]:
            return [(i, self.scraper.scrape(links[i])) for i in indexes]

        outcomes: list[ScrapeOutcome | None] = [None] * len(links)
        for done in self._pool.map(run_host, by_host.values()):
            for index, outcome in done:
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def to_records(
        self, records: Sequence[ConsumerRecord]
    ) -> tuple[list[OutRecord], dict[str, int], list[tuple[str, str]]]:
        """Everything one batch of `news.links` records becomes, counts by outcome, and the
        (canonical URL key, item id) pairs of its items for the dedup store."""
        settings = self.settings
        parsed: list[tuple[ConsumerRecord, Link | Rejection]] = [(r, parse_link(r.value)) for r in records]
        links = [(r, p) for r, p in parsed if isinstance(p, Link)]
        outcomes = self.scrape_batch([link for _r, link in links])
        out: list[OutRecord] = []
        canonical: list[tuple[str, str]] = []
        tally: dict[str, int] = defaultdict(int)
        for record, rejection in ((r, p) for r, p in parsed if isinstance(p, Rejection)):
            out.append(
                failure_record(settings.topic_links_dlq, record, rejection.code, rejection.reason, True)
            )
            tally[f"invalid_link:{rejection.code}"] += 1
        for (record, link), outcome in zip(links, outcomes, strict=True):
            tally[outcome.code] += 1
            metrics.PAGES.labels(outcome.code).inc()
            metrics.FETCH_SECONDS.observe(outcome.seconds)
            if outcome.item is not None:
                if outcome.item.url:
                    canonical.append((url_dedup_key(outcome.item.url), outcome.item.id))
                out.append(
                    OutRecord(
                        settings.topic_raw,
                        outcome.item.id.encode(),
                        outcome.item.to_json_bytes(),
                        ((LINK_HEADER, link.url.encode()),),
                    )
                )
            else:
                out.append(
                    failure_record(
                        settings.topic_links_dlq, record, outcome.code, outcome.reason, not outcome.retryable
                    )
                )
                log.info(
                    "link failed",
                    extra={
                        "url": link.url,
                        "reason_code": outcome.code,
                        "reason": outcome.reason,
                        "attempts": outcome.attempts,
                    },
                )
            metrics.HOST_INTERVAL.labels(link.host).set(self.fetcher.interval(link.host))
        return out, dict(tally), canonical

    def publish(self, producer: NewsProducer, out: Sequence[OutRecord]) -> None:
        """Until Kafka holds every record: a broker outage delays the commit, it never skips it."""
        delay = 1.0
        while True:
            try:
                producer.publish_records(out, timeout_s=60)
                return
            except KafkaError as exc:
                if self.stop.is_set():
                    raise
                log.warning("publish failed; retrying", extra={"error": str(exc), "retry_in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def run(self) -> None:
        settings = self.settings
        declare_scrape_topics(settings)
        producer = NewsProducer(
            make_producer(settings.kafka_bootstrap, settings.kafka_max_message_bytes, "finsent-scraper"),
            settings.topic_raw,
        )
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.scraper_group,
            client_id="finsent-scraper",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.scrape_batch_links,
            session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.kafka_heartbeat_interval_s * 1000),
            max_poll_interval_ms=int(settings.kafka_max_poll_interval_s * 1000),
        )
        consumer.subscribe(
            [settings.topic_links], listener=_HoldHostsOnAssign(self.fetcher, settings.scrape_handover_s)
        )
        dedup = DedupStore(settings.dedup_path)
        log.info("scraper started", extra={"topic": settings.topic_links, "group": settings.scraper_group})
        try:
            while not self.stop.is_set():
                polled = consumer.poll(timeout_ms=1000)
                records = [record for batch in polled.values() for record in batch]
                if not records:
                    continue
                started = time.monotonic()
                out, tally, canonical = self.to_records(records)
                self.publish(producer, out)
                # Canonical URLs join the seen keys only once Kafka holds the items.
                dedup.remember_keys(canonical)
                consumer.commit()
                log.info(
                    "scrape batch committed",
                    extra={
                        "links": len(records),
                        "outcomes": tally,
                        "seconds": round(time.monotonic() - started, 3),
                    },
                )
        finally:
            consumer.close(autocommit=False)
            producer.close()
            dedup.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.fetcher.close()


def run_scraper(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; the batch in hand is finished, published and committed first."""
    service = ScraperService(settings)

    def request_stop(signum: int, _frame: object) -> None:
        log.info("scraper stopping", extra={"signal": signum})
        service.stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    metrics.serve(
        settings.metrics_host,
        settings.scraper_metrics_port,
        {"kafka": lambda: ping_kafka(settings.kafka_bootstrap)},
    )
    service.run()
