"""What the worker does with one batch of raw Kafka records, independent of Faust.

validate → find entities → classify (one call for the whole batch: article and entity answers
from one encoder pass) → store (one transaction) → tell the caller what to publish. It is
blocking code: the Faust agent runs it in a worker thread so the event loop keeps heartbeating
to the broker while the model and the database work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from connectors.db.writer import (
    ArticleRow,
    DeadLetterRow,
    EntityPredictionRow,
    PredictionRow,
    WriteResult,
    write_batch,
)
from connectors.entities import (
    COMPANY,
    MAX_ENTITY_CHARS,
    CompanyDirectory,
    Entity,
    EntityRecogniser,
    entities_of,
)
from connectors.news_item import NewsItem, Rejection, parse_message
from models.classifier import Classifier, ItemAnswer, Output
from models.instructions import InstructionSet

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def replayed_from(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the dead letter this message is a replay of."""
        for name, value in self.headers:
            if name == REPLAY_HEADER:
                topic, partition, offset = value.decode().rsplit(":", 2)
                return topic, int(partition), int(offset)
        return None


REPLAY_HEADER = "finsent.replayed_from"


@dataclass(frozen=True)
class DeadLetter:
    record: RawRecord
    code: str
    reason: str


@dataclass(frozen=True)
class Stored:
    """One stored item: what the model answered, and the entities it was answered for."""

    item: NewsItem
    answer: ItemAnswer
    entities: list[Entity]


@dataclass
class BatchOutcome:
    stored: list[Stored] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    model_version: str = ""
    write: WriteResult | None = None
    classify_s: float = 0.0
    write_s: float = 0.0


@dataclass(frozen=True)
class Limits:
    max_title_chars: int
    max_body_chars: int


class ModelFailure(RuntimeError):
    """Inference failed even for a single item; that item is dead-lettered."""


class BatchProcessor:
    def __init__(
        self,
        engine: Engine,
        classifier: Callable[[], Classifier],
        instructions: Callable[[], InstructionSet],
        limits: Limits,
        *,
        db_retry_max_s: float = 30.0,
        stop_requested: Callable[[], bool] = lambda: False,
        recogniser: EntityRecogniser | None = None,
    ) -> None:
        # Without a recogniser only the entities an item names itself are judged.
        self._recogniser = recogniser or EntityRecogniser(CompanyDirectory(), frozenset())
        self._engine = engine
        self._classifier = classifier
        self._instructions = instructions
        self._limits = limits
        self._db_retry_max_s = db_retry_max_s
        self._stop_requested = stop_requested

    def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        # The model and instruction set are read once per batch: a hot swap takes effect
        # between batches, never inside one, so every row of a batch has one model version.
        classifier = self._with_db_retry("model lookup", self._classifier)
        instructions = self._with_db_retry("instruction lookup", self._instructions)
        outcome = BatchOutcome(model_version=classifier.version)
        valid: list[tuple[RawRecord, NewsItem]] = []
        for record in records:
            parsed = parse_message(
                record.value,
                max_title_chars=self._limits.max_title_chars,
                max_body_chars=self._limits.max_body_chars,
            )
            if isinstance(parsed, Rejection):
                outcome.dead.append(DeadLetter(record, parsed.code, parsed.reason))
            else:
                valid.append((record, parsed))

        began = time.perf_counter()
        entities = [
            entities_of(self._recogniser, item.text, item.tickers, item.entities) for _, item in valid
        ]
        results = self._classify_resilient(classifier, instructions, valid, entities, outcome)
        outcome.classify_s = time.perf_counter() - began

        rows: list[ArticleRow] = []
        for (record, item), found, result in zip(valid, entities, results, strict=True):
            if result is None:
                continue
            stored = Stored(item, result, found)
            outcome.stored.append(stored)
            rows.append(article_row(stored, classifier.version, record.partition, record.offset))
        dead_rows = dead_letter_rows(outcome.dead)
        # A replayed dead letter leaves the DLQ count once this batch has dealt with it again:
        # 'stored' when it became a row now, 'dead_lettered_again' when it has a new record.
        stored_offsets = {(r.topic, r.partition, r.offset) for r, _ in valid} - {
            (d.record.topic, d.record.partition, d.record.offset) for d in outcome.dead
        }
        resolutions = [
            (
                *origin,
                "stored"
                if (record.topic, record.partition, record.offset) in stored_offsets
                else "dead_lettered_again",
            )
            for record in records
            if (origin := record.replayed_from) is not None
        ]
        began = time.perf_counter()
        outcome.write = self._with_db_retry(
            "write", lambda: write_batch(self._engine, rows, dead_rows, resolutions)
        )
        outcome.write_s = time.perf_counter() - began
        return outcome

    def _classify_resilient(
        self,
        classifier: Classifier,
        instructions: InstructionSet,
        valid: list[tuple[RawRecord, NewsItem]],
        entities: list[list[Entity]],
        outcome: BatchOutcome,
    ) -> list[ItemAnswer | None]:
        """Classify; a failing batch is split in halves until the failing items are isolated."""
        items = [item for _, item in valid]
        results: list[ItemAnswer | None] = [None] * len(items)

        def run(lo: int, hi: int) -> None:
            if lo >= hi:
                return
            try:
                answers = classifier.classify_items(
                    [item.text for item in items[lo:hi]],
                    instructions,
                    [[e.text for e in found] for found in entities[lo:hi]],
                )
                results[lo:hi] = answers
            except Exception as exc:  # any inference error: isolate it rather than stop the stream
                if hi - lo == 1:
                    log.error(
                        "item failed inference", extra={"offset": valid[lo][0].offset, "error": repr(exc)}
                    )
                    outcome.dead.append(
                        DeadLetter(valid[lo][0], "model_error", f"inference failed: {exc!r}"[:500])
                    )
                    return
                log.warning("batch inference failed; splitting", extra={"size": hi - lo, "error": repr(exc)})
                mid = (lo + hi) // 2
                run(lo, mid)
                run(mid, hi)

        run(0, len(items))
        return results

    def _with_db_retry(self, what: str, call: Callable[[], R]) -> R:
        return retry_db(what, call, self._db_retry_max_s, self._stop_requested)


def dead_letter_rows(dead: Sequence[DeadLetter]) -> list[DeadLetterRow]:
    return [
        DeadLetterRow(r.topic, r.partition, r.offset, r.key, d.code, d.reason, len(r.value or b""))
        for d in dead
        for r in [d.record]
    ]


def retry_db(what: str, call: Callable[[], R], max_delay_s: float, stop_requested: Callable[[], bool]) -> R:
    """Every database touch of a batch goes through here: an outage pauses the batch (and so
    the stream) until the database is back, instead of crashing the agent."""
    delay = 0.5
    while True:
        try:
            return call()
        except DBAPIError as exc:
            # Connection trouble (the database is down or restarting) is waited out; anything
            # else (a bad statement, a constraint) is a bug and must surface.
            if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
                raise
            if stop_requested():
                raise
            log.warning(
                f"database {what} failed; retrying",
                extra={"retry_in_s": delay, "error": str(exc)[:300]},
            )
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)


def article_row(
    stored: Stored, version: str, partition: int | None = None, offset: int | None = None
) -> ArticleRow:
    """The rows one answered item becomes (the worker's, and the backfill's re-answers)."""
    item, answer = stored.item, stored.answer
    companies = [e.ticker for e in stored.entities if e.kind == COMPANY and e.ticker]
    return ArticleRow(
        id=item.id,
        source=item.source,
        url=item.url,
        title=item.title,
        body=item.body,
        published_at=item.published_at,
        fetched_at=item.fetched_at,
        lang=item.lang,
        # Companies recognised by name count for their tickers as cashtags do (per-ticker series).
        tickers=list(dict.fromkeys([*item.tickers, *companies])),
        kafka_partition=partition,
        kafka_offset=offset,
        predictions=[
            PredictionRow(name, out.label, out.score, out.distribution, version, out.zero_shot)
            for name, out in answer.article.items()
        ],
        entity_predictions=[
            EntityPredictionRow(
                entity.text[:MAX_ENTITY_CHARS],
                entity.kind,
                entity.ticker,
                answer.entities[entity.text].found,
                name,
                out.label,
                out.score,
                out.distribution,
                version,
                out.zero_shot,
            )
            for entity in stored.entities
            if entity.text in answer.entities
            for name, out in answer.entities[entity.text].outputs.items()
        ],
    )


def _output(out: Output) -> dict[str, object]:
    return {
        "label": out.label,
        "score": out.score,
        "distribution": out.distribution,
        "zero_shot": out.zero_shot,
    }


def classified_message(stored: Stored, version: str) -> dict[str, object]:
    """The `news.classified` value for one stored article."""
    item, answer = stored.item, stored.answer
    return {
        "schema_version": 1,
        "id": item.id,
        "model_version": version,
        "processed_at": datetime.now(UTC).isoformat(),
        "tickers": item.tickers,
        "predictions": {name: _output(out) for name, out in answer.article.items()},
        "entities": {
            entity.text: {
                "kind": entity.kind,
                "ticker": entity.ticker,
                "found": answer.entities[entity.text].found,
                **{name: _output(out) for name, out in answer.entities[entity.text].outputs.items()},
            }
            for entity in stored.entities
            if entity.text in answer.entities
        },
    }
