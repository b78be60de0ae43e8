"""Listing → dedup → `news.links`, in batches: the discovery side of the scraping pipeline.

A link is remembered as seen only once Kafka holds it (a crash in between re-sends it, which is
harmless: the scraper's item id is the page's canonical URL, so a re-scraped page is the same
article). The scraper remembers each page's canonical URL too, so a listing that later names an
article by its canonical URL (a feed gave the AMP link, the sitemap the canonical one) does not
have it fetched twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.dedup import DedupStore
from connectors.kafka_io import NewsProducer, OutRecord
from connectors.news_item import url_dedup_key
from connectors.scrape.links import Link

log = logging.getLogger(__name__)


@dataclass
class DiscoveryReport:
    read: int = 0
    produced: int = 0
    duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def record_error(self, where: str, reason: str) -> None:
        self.errors.append((where, reason))
        log.warning("listing entry rejected", extra={"where": where, "reason": reason})


def link_keys(link: Link) -> list[str]:
    """Seen-before keys of a link: its URL (the listing's title is only a hint, and two articles of
    one source can share a headline such as "Markets wrap")."""
    return [url_dedup_key(link.url)]


def discover(
    links: Iterable[Link],
    producer: NewsProducer,
    topic: str,
    dedup: DedupStore | None,
    *,
    report: DiscoveryReport | None = None,
    batch_size: int = 500,
) -> DiscoveryReport:
    report = report or DiscoveryReport()
    batch: list[Link] = []
    batch_keys: set[str] = set()

    def flush() -> None:
        if not batch:
            return
        report.produced += producer.publish_records(
            [OutRecord(topic, link.key, link.to_json_bytes()) for link in batch]
        )
        if dedup is not None:
            dedup.remember_keys((key, link.url) for link in batch for key in link_keys(link))
        batch.clear()
        batch_keys.clear()

    for link in links:
        report.read += 1
        keys = link_keys(link)
        if batch_keys.intersection(keys) or (dedup is not None and dedup.seen_keys(keys)):
            report.duplicates += 1
            continue
        batch.append(link)
        batch_keys.update(keys)
        if len(batch) >= batch_size:
            flush()
    flush()
    return report
