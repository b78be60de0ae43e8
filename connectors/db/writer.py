"""Batched, idempotent writes of the worker's results.

One transaction per batch: articles, ticker links, predictions, entity predictions and dead
letters of a batch are committed together or not at all. Every insert is `ON CONFLICT DO NOTHING`
on the natural key, so a redelivered batch (after a crash before the offset commit) adds no rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connectors.db.schema import Article, Base, DeadLetter, Prediction


@dataclass
class PredictionRow:
    instruction: str
    label: str
    score: float
    distribution: dict[str, float]
    model_version: str
    zero_shot: bool = False


@dataclass
class EntityPredictionRow:
    entity: str  # as given in the item, or as the recogniser found it
    kind: str  # company | other
    ticker: str | None
    found: bool  # the entity occurs in the text
    instruction: str
    label: str
    score: float
    distribution: dict[str, float]
    model_version: str
    zero_shot: bool = False


@dataclass
class ArticleRow:
    id: str
    source: str
    url: str | None
    title: str
    body: str
    published_at: datetime
    fetched_at: datetime
    lang: str
    tickers: list[str]
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    predictions: list[PredictionRow] = field(default_factory=list)
    entity_predictions: list[EntityPredictionRow] = field(default_factory=list)


@dataclass
class DeadLetterRow:
    source_topic: str
    source_partition: int
    source_offset: int
    message_key: bytes | None
    reason_code: str
    reason: str
    size_bytes: int


@dataclass
class WriteResult:
    articles_inserted: int
    predictions_inserted: int
    dead_letters_inserted: int
    entity_predictions_inserted: int = 0


def _insert(engine: Engine, table: Table) -> Any:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}: use PostgreSQL or SQLite")


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _insert_ignore(session: Session, engine: Engine, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    # One statement executed with many parameter sets: SQLAlchemy's "insertmanyvalues" sends them
    # as batched multi-row INSERTs (within each driver's parameter limit) from a statement it
    # compiles once; a literal multi-row VALUES statement was compiled afresh for every batch,
    # which cost more than the database work. RETURNING lists only the rows actually inserted
    # (rowcount is unreliable for INSERT ... ON CONFLICT across drivers).
    statement = _insert(engine, table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return len(session.execute(statement, list(rows)).all())


def _stored_published_at(session: Session, articles: Sequence[ArticleRow]) -> dict[str, datetime]:
    """Each article's publication time as stored: the partition key of its predictions.

    Not the incoming message's: a source that re-sends an id with a corrected time keeps the
    stored article (first write wins), and a prediction keyed by the new time would land in
    another month's partition beside the old one, a duplicate the unique key cannot see there.
    """
    wanted = list(dict.fromkeys(a.id for a in articles if a.predictions or a.entity_predictions))
    stored: dict[str, datetime] = {}
    # Chunked: SQLite builds before 3.32 refuse statements with over 999 parameters.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.execute(select(Article.id, Article.published_at).where(Article.id.in_(chunk)))
        stored.update({article_id: published_at for article_id, published_at in rows})
    return stored


def write_batch(
    engine: Engine,
    articles: Sequence[ArticleRow],
    dead_letters: Sequence[DeadLetterRow] = (),
    resolved: Sequence[tuple[str, int, int, str]] = (),
) -> WriteResult:
    """Store one batch in one transaction; returns how many rows were new."""
    article_rows = [
        {
            "id": a.id,
            "source": a.source,
            "url": a.url,
            "title": a.title,
            "body": a.body,
            "published_at": a.published_at,
            "fetched_at": a.fetched_at,
            "lang": a.lang,
            "tickers": a.tickers,
            "kafka_partition": a.kafka_partition,
            "kafka_offset": a.kafka_offset,
        }
        for a in articles
    ]
    ticker_rows = [{"article_id": a.id, "ticker": t} for a in articles for t in dict.fromkeys(a.tickers)]
    dlq_rows = [d.__dict__ for d in dead_letters]
    with Session(engine) as session, session.begin():
        articles_inserted = _insert_ignore(session, engine, _table("articles"), article_rows)
        _insert_ignore(session, engine, _table("article_tickers"), ticker_rows)
        published = _stored_published_at(session, articles)
        prediction_rows = [
            {
                "article_id": a.id,
                "instruction": p.instruction,
                "label": p.label,
                "score": p.score,
                "distribution": p.distribution,
                "model_version": p.model_version,
                "zero_shot": p.zero_shot,
                "published_at": published[a.id],
            }
            for a in articles
            for p in a.predictions
        ]
        entity_rows = [
            {"article_id": a.id, **e.__dict__, "published_at": published[a.id]}
            for a in articles
            for e in a.entity_predictions
        ]
        predictions_inserted = _insert_ignore(session, engine, _table("predictions"), prediction_rows)
        entities_inserted = _insert_ignore(session, engine, _table("entity_predictions"), entity_rows)
        dlq_inserted = _insert_ignore(session, engine, _table("dlq_records"), dlq_rows)
        for topic, partition, offset, resolution in resolved:
            session.execute(
                update(DeadLetter)
                .where(
                    tuple_(DeadLetter.source_topic, DeadLetter.source_partition, DeadLetter.source_offset)
                    == (topic, partition, offset),
                    DeadLetter.resolved_at.is_(None),
                )
                .values(resolved_at=func.now(), resolution=resolution)
            )
    return WriteResult(articles_inserted, predictions_inserted, dlq_inserted, entities_inserted)


def count_rows(engine: Engine) -> dict[str, int]:
    """Row counts the demo and the tests account with."""
    with Session(engine) as session:
        return {
            "articles": session.scalar(select(func.count()).select_from(Article)) or 0,
            "predictions": session.scalar(select(func.count()).select_from(Prediction)) or 0,
            "dlq_records": session.scalar(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.resolved_at.is_(None))
            )
            or 0,
        }
