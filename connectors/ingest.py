"""Source → dedup → Kafka, in batches: the ingest side of the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from connectors.dedup import DedupStore
from connectors.kafka_io import NewsProducer
from connectors.news_item import NewsItem

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    read: int = 0
    produced: int = 0
    duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def record_error(self, where: str, reason: str) -> None:
        self.errors.append((where, reason))
        log.warning("source row rejected", extra={"where": where, "reason": reason})


def ingest(
    items: Iterable[NewsItem],
    producer: NewsProducer,
    dedup: DedupStore | None,
    *,
    report: IngestReport | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Produce every item not seen before; an item is remembered only once Kafka holds it."""
    report = report or IngestReport()
    batch: list[NewsItem] = []
    batch_keys: set[str] = set()

    def flush() -> None:
        if not batch:
            return
        report.produced += producer.publish(batch)
        if dedup is not None:
            dedup.remember(batch)
        if progress is not None:
            progress(len(batch))
        batch.clear()
        batch_keys.clear()

    for item in items:
        report.read += 1
        keys = DedupStore.keys(item)
        if dedup is not None and (batch_keys.intersection(keys) or dedup.seen_keys(keys)):
            report.duplicates += 1
            continue
        batch.append(item)
        batch_keys.update(keys)
        if len(batch) >= batch_size:
            flush()
    flush()
    return report
