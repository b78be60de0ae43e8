"""Schema, migrations, idempotent writes and the analyst views, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from connectors.db.engine import make_engine
from connectors.db.partitions import is_partition
from connectors.db.schema import Base
from connectors.db.writer import (
    ArticleRow,
    DeadLetterRow,
    EntityPredictionRow,
    PredictionRow,
    count_rows,
    write_batch,
)

ANALYST_SQL = Path(__file__).resolve().parents[1] / "docs" / "analyst-sql.md"


def _article(i: int, sentiment: str, topic: str, tickers: list[str], hour: int = 10) -> ArticleRow:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    probs[sentiment] = 0.8
    return ArticleRow(
        id=f"article{i:04d}",
        source="test",
        url=None,
        title=f"headline {i}",
        body="",
        published_at=datetime(2026, 3, 2, hour, 15, tzinfo=UTC),
        fetched_at=datetime(2026, 3, 2, hour, 16, tzinfo=UTC),
        lang="en",
        tickers=tickers,
        predictions=[
            PredictionRow("sentiment", sentiment, 0.8, probs, "v1"),
            PredictionRow("topic", topic, 0.9, {topic: 0.9, "Macro": 0.1}, "v1"),
        ],
    )


def _entity(entity: str, ticker: str | None, sentiment: str) -> EntityPredictionRow:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    probs[sentiment] = 0.8
    kind = "company" if ticker else "other"
    return EntityPredictionRow(entity, kind, ticker, True, "sentiment", sentiment, 0.8, probs, "v1")


def _fill(engine: Engine) -> None:
    mixed = _article(2, "negative", "Earnings", ["AAPL", "MSFT"])  # bad for Apple, good for Microsoft
    mixed.entity_predictions = [
        _entity("Apple", "AAPL", "negative"),
        _entity("Microsoft", "MSFT", "positive"),
        _entity("Nasdaq", None, "neutral"),
    ]
    rows = [
        _article(1, "negative", "Earnings", ["AAPL"]),
        mixed,
        _article(3, "positive", "Earnings", ["MSFT"]),
        _article(4, "neutral", "Macro", [], hour=11),
    ]
    first = write_batch(engine, rows, [DeadLetterRow("news.raw", 0, 7, None, "invalid_json", "bad", 3)])
    assert (
        first.articles_inserted,
        first.predictions_inserted,
        first.dead_letters_inserted,
        first.entity_predictions_inserted,
    ) == (4, 8, 1, 3)
    # Redelivered: nothing new, entity rows included.
    again = write_batch(engine, rows, [DeadLetterRow("news.raw", 0, 7, None, "invalid_json", "bad", 3)])
    assert (
        again.articles_inserted,
        again.predictions_inserted,
        again.dead_letters_inserted,
        again.entity_predictions_inserted,
    ) == (0, 0, 0, 0)


def _check_views(engine: Engine) -> None:
    with engine.connect() as conn:
        topic = conn.execute(
            text(
                "SELECT topic, items, negative, positive, negative_share, mean_sentiment "
                "FROM v_topic_sentiment_hourly ORDER BY topic"
            )
        ).all()
        assert [(r[0], r[1], r[2], r[3]) for r in topic] == [("Earnings", 3, 2, 1), ("Macro", 1, 0, 0)]
        assert topic[0][4] == pytest.approx(2 / 3)
        assert topic[0][5] == pytest.approx((-0.7 - 0.7 + 0.7) / 3)
        # Per ticker, the sentiment toward the ticker: the mixed article counts as negative for
        # AAPL and positive for MSFT (with the article's label it was negative for both).
        ticker = conn.execute(
            text("SELECT ticker, items, negative, positive FROM v_ticker_sentiment_daily ORDER BY ticker")
        ).all()
        assert [tuple(r) for r in ticker] == [("AAPL", 2, 2, 0), ("MSFT", 2, 0, 2)]
        sources = conn.execute(
            text(
                "SELECT article_id, ticker, sentiment, sentiment_source FROM v_ticker_sentiment_items "
                "ORDER BY article_id, ticker"
            )
        ).all()
        assert [tuple(r) for r in sources] == [
            ("article0001", "AAPL", "negative", "article"),
            ("article0002", "AAPL", "negative", "entity"),
            ("article0002", "MSFT", "positive", "entity"),
            ("article0003", "MSFT", "positive", "article"),
        ]
        entities = conn.execute(
            text("SELECT entity, kind, ticker, sentiment FROM v_entity_sentiment ORDER BY entity")
        ).all()
        assert [tuple(r) for r in entities] == [
            ("Apple", "company", "AAPL", "negative"),
            ("Microsoft", "company", "MSFT", "positive"),
            ("Nasdaq", "other", None, "neutral"),
        ]


def test_sqlite_writes_are_idempotent_and_views_aggregate(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    _fill(engine)
    assert count_rows(engine) == {"articles": 4, "predictions": 8, "dlq_records": 1}
    _check_views(engine)


@pytest.mark.postgres
def test_postgres_writes_are_idempotent_and_views_aggregate(pg_engine: Engine) -> None:
    _fill(pg_engine)
    assert count_rows(pg_engine) == {"articles": 4, "predictions": 8, "dlq_records": 1}
    _check_views(pg_engine)


def test_latest_prediction_wins_in_views(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    _fill(engine)
    newer = _article(1, "positive", "Earnings", ["AAPL"])
    for p in newer.predictions:
        p.model_version = "v2"
    write_batch(engine, [newer])
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT sentiment, model_version FROM v_articles_classified WHERE article_id = 'article0001'"
            )
        ).one()
        kept = conn.execute(
            text("SELECT COUNT(*) FROM predictions WHERE article_id = 'article0001'")
        ).scalar()
    assert tuple(row) == ("positive", "v2") and kept == 4


def _skip_partitions(name: str | None, type_: str, parent_names: object) -> bool:
    """Month partitions are the parent table's storage, not tables of the schema."""
    return not (type_ == "table" and name is not None and is_partition(name))


def _assert_no_drift(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _skip_partitions})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"migrations and ORM models differ: {diff}"


def test_migrations_match_the_orm_on_sqlite(sqlite_url: str) -> None:
    _assert_no_drift(make_engine(sqlite_url))


@pytest.mark.postgres
def test_migrations_match_the_orm_on_postgres(pg_engine: Engine) -> None:
    _assert_no_drift(pg_engine)


def _analyst_queries() -> list[str]:
    block = ANALYST_SQL.read_text().split("<!-- analyst-sql -->")[1]
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", block, re.DOTALL)]


@pytest.mark.postgres
def test_every_analyst_sql_example_runs_on_postgres(pg_engine: Engine) -> None:
    _fill(pg_engine)
    agreed = _article(5, "positive", "Earnings", ["TSLA", "F"])  # good for both: not mixed
    agreed.entity_predictions = [_entity("Tesla", "TSLA", "positive"), _entity("Ford", "F", "positive")]
    write_batch(pg_engine, [agreed], [])
    queries = _analyst_queries()
    assert len(queries) >= 4
    with pg_engine.connect() as conn:
        for query in queries:
            rows = conn.execute(text(query)).all()
            assert rows, f"analyst SQL example returned nothing on test data:\n{query}"
            if "COUNT(DISTINCT s.sentiment)" in query:
                # Only the article with good news for one entity and bad for another, all of
                # its entities (the neutral one too), none of the single-sentiment articles.
                assert sorted(r.entity for r in rows) == ["Apple", "Microsoft", "Nasdaq"]
