"""Retention drops only what the settings say, and nothing any analyst view shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from connectors.db.housekeeping import Retention, apply_retention
from connectors.db.writer import ArticleRow, DeadLetterRow, EntityPredictionRow, PredictionRow, write_batch

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROBS = {"negative": 0.1, "neutral": 0.2, "positive": 0.7}


def _article(article_id: str, days_ago: float, versions: list[str]) -> ArticleRow:
    at = NOW - timedelta(days=days_ago)
    return ArticleRow(
        id=article_id,
        source="t",
        url=None,
        title=f"Apple {article_id}",
        body=f"body of {article_id}",
        published_at=at,
        fetched_at=at,
        lang="en",
        tickers=["AAPL"],
        predictions=[PredictionRow("sentiment", "positive", 0.7, PROBS, v) for v in versions]
        + [PredictionRow("topic", "Earnings", 0.9, {"Earnings": 0.9}, versions[0])],
        entity_predictions=[
            EntityPredictionRow("Apple", "company", "AAPL", True, "sentiment", "positive", 0.7, PROBS, v)
            for v in versions
        ],
    )


def _age(engine: Engine, table: str, article_id: str, version: str, days_ago: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {table} SET created_at = :t WHERE article_id = :a AND model_version = :v"),
            {"t": NOW - timedelta(days=days_ago), "a": article_id, "v": version},
        )


def _view(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        classified = conn.execute(
            text(
                "SELECT article_id, sentiment, topic, model_version "
                "FROM v_articles_classified ORDER BY article_id"
            )
        ).all()
        entities = conn.execute(
            text(
                "SELECT article_id, entity, sentiment, model_version "
                "FROM v_entity_sentiment ORDER BY article_id"
            )
        ).all()
        tickers = conn.execute(text("SELECT * FROM v_ticker_sentiment_daily ORDER BY bucket")).all()
    return [tuple(r) for r in [*classified, *entities, *tickers]]


def test_retention_drops_only_what_the_settings_say(engine: Engine) -> None:
    write_batch(
        engine,
        [_article("old", 40, ["v1", "v2"]), _article("new", 1, ["v1", "v2"])],
        [DeadLetterRow("news.raw", 0, i, None, "invalid_json", "bad", 3) for i in range(3)],
    )
    for table in ("predictions", "entity_predictions"):
        _age(engine, table, "old", "v1", 39)
        _age(engine, table, "old", "v2", 20)  # replaced v1 20 days ago
        _age(engine, table, "new", "v1", 1)
        _age(engine, table, "new", "v2", 0.5)  # replaced v1 half a day ago
    with engine.begin() as conn:
        conn.execute(text("UPDATE dlq_records SET created_at = :t"), {"t": NOW - timedelta(days=40)})
        conn.execute(text("UPDATE dlq_records SET resolved_at = :t WHERE source_offset < 2"), {"t": NOW})
    before = _view(engine)

    # Unset retentions keep everything but old resolved dead letters. (Creating partitions is
    # tests/test_partitions.py's business.)
    def retain(retention: Retention) -> dict[str, int]:
        done = apply_retention(engine, retention, NOW)
        done.pop("partitions_created")
        return done

    assert retain(Retention(dead_letter_days=30)) == {"dead_letters": 2}
    removed = retain(Retention(30, body_days=30, superseded_days=10))
    assert removed == {"dead_letters": 0, "bodies": 1, "predictions": 1, "entity_predictions": 1}
    assert retain(Retention(30, body_days=30, superseded_days=10)) == {
        "dead_letters": 0,
        "bodies": 0,
        "predictions": 0,
        "entity_predictions": 0,
    }
    with engine.connect() as conn:
        bodies = dict(conn.execute(text("SELECT id, body FROM articles")).all())
        kept = sorted(
            tuple(r)
            for r in conn.execute(text("SELECT article_id, instruction, model_version FROM predictions"))
        )
        entity_kept = sorted(
            tuple(r) for r in conn.execute(text("SELECT article_id, model_version FROM entity_predictions"))
        )
        unresolved = conn.execute(
            text("SELECT COUNT(*) FROM dlq_records WHERE resolved_at IS NULL")
        ).scalar_one()
    assert bodies == {"old": "", "new": "body of new"}
    assert kept == [
        ("new", "sentiment", "v1"),  # replaced only half a day ago: kept for comparison
        ("new", "sentiment", "v2"),
        ("new", "topic", "v1"),
        ("old", "sentiment", "v2"),
        ("old", "topic", "v1"),  # old, but the newest for its instruction
    ]
    assert entity_kept == [("new", "v1"), ("new", "v2"), ("old", "v2")]
    assert unresolved == 1
    assert _view(engine) == before  # what analysts see is unchanged
