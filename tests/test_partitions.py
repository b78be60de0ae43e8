"""The raw prediction tables' month partitions (PostgreSQL): rows find their month, a time-bounded
query reads only its months, and the raw-history retention drops whole months without changing
anything an analyst view shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from connectors.db.engine import make_engine
from connectors.db.housekeeping import Retention, apply_retention
from connectors.db.partitions import partitions
from connectors.db.writer import ArticleRow, EntityPredictionRow, PredictionRow, write_batch

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROBS = {"negative": 0.6, "neutral": 0.3, "positive": 0.1}


def _article(article_id: str, published_at: datetime) -> ArticleRow:
    return ArticleRow(
        id=article_id,
        source="t",
        url=None,
        title=f"Boeing {article_id}",
        body="",
        published_at=published_at,
        fetched_at=published_at,
        lang="en",
        tickers=["BA"],
        predictions=[
            PredictionRow("sentiment", "negative", 0.6, PROBS, "v1"),
            PredictionRow("sentiment", "neutral", 0.5, PROBS, "v2"),
            PredictionRow("topic", "Markets", 0.9, {"Markets": 0.9}, "v2"),
        ],
        entity_predictions=[
            EntityPredictionRow("Boeing", "company", "BA", True, "sentiment", "negative", 0.6, PROBS, v)
            for v in ("v1", "v2")
        ],
    )


MARCH = _article("march", datetime(2026, 3, 10, 9, tzinfo=UTC))
MAY = _article("may", datetime(2026, 5, 10, 9, tzinfo=UTC))


def _rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _seen_by_analysts(engine: Engine) -> list[tuple[object, ...]]:
    return [
        *_rows(engine, "SELECT * FROM v_articles_classified ORDER BY article_id"),
        *_rows(engine, "SELECT * FROM v_entity_sentiment ORDER BY article_id"),
        *_rows(engine, "SELECT * FROM v_ticker_sentiment_daily ORDER BY bucket"),
        *_rows(engine, "SELECT * FROM v_topic_sentiment_hourly ORDER BY bucket"),
    ]


def _plan(engine: Engine, sql: str) -> str:
    return "\n".join(str(r[0]) for r in _rows(engine, f"EXPLAIN {sql}"))


def test_a_resent_article_with_another_time_adds_no_prediction(engine: Engine) -> None:
    """The predictions' partition key is the stored article's time, not the message's: a source
    re-sending an id with a corrected time must not get a second copy in another month."""
    first = write_batch(engine, [MAY])
    again = write_batch(engine, [replace(MAY, published_at=datetime(2026, 7, 2, tzinfo=UTC))])
    assert (first.predictions_inserted, first.entity_predictions_inserted) == (3, 2)
    assert (again.articles_inserted, again.predictions_inserted, again.entity_predictions_inserted) == (
        0,
        0,
        0,
    )
    assert _rows(engine, "SELECT COUNT(*) FROM predictions") == [(3,)]


@pytest.mark.postgres
def test_months_prune_plans_and_retention_drops_whole_months(pg_engine: Engine) -> None:
    write_batch(pg_engine, [MARCH, MAY])
    # The migration made partitions for the months around the real clock; March and May 2026
    # had none, so their rows wait in the default partitions, queryable as ever.
    assert _rows(pg_engine, "SELECT COUNT(*) FROM predictions_default") == [(6,)]
    assert _rows(pg_engine, "SELECT COUNT(*) FROM entity_predictions_default") == [(4,)]
    before = _seen_by_analysts(pg_engine)

    done = apply_retention(pg_engine, Retention(dead_letter_days=30), NOW)
    # Per table: March and May out of the default, and June to August ahead of NOW.
    assert done["partitions_created"] == 10
    with pg_engine.connect() as conn:
        months = {p.name for p in partitions(conn, "predictions")}
    assert {"predictions_p202603", "predictions_p202605", "predictions_p202608"} <= months
    assert _rows(pg_engine, "SELECT COUNT(*) FROM predictions_default") == [(0,)]
    assert _rows(pg_engine, "SELECT COUNT(*) FROM predictions_p202605") == [(3,)]
    assert _seen_by_analysts(pg_engine) == before

    # A query bounded in time reads its month's partition only.
    may_only = (
        "SELECT instruction, COUNT(*) FROM predictions "
        "WHERE published_at >= '2026-05-01' AND published_at < '2026-06-01' GROUP BY instruction"
    )
    plan = _plan(pg_engine, may_only)
    assert "predictions_p202605" in plan, plan
    assert "predictions_p202603" not in plan and "predictions_default" not in plan, plan
    assert "predictions_p202603" in _plan(
        pg_engine, "SELECT COUNT(*) FROM predictions"
    )  # unbounded reads all

    # Raw history kept 60 days: March ends before the cutoff (April 2), May does not.
    done = apply_retention(pg_engine, Retention(30, raw_history_days=60), NOW)
    assert done["partitions_dropped"] == 2
    assert _rows(pg_engine, "SELECT DISTINCT article_id FROM predictions") == [("may",)]
    assert _rows(pg_engine, "SELECT DISTINCT article_id FROM entity_predictions") == [("may",)]
    # The current answers and the rollups are other tables: analysts see the same as before.
    assert _rows(pg_engine, "SELECT COUNT(*) FROM current_predictions WHERE article_id = 'march'") == [(2,)]
    assert _seen_by_analysts(pg_engine) == before
    assert apply_retention(pg_engine, Retention(30, raw_history_days=60), NOW)["partitions_dropped"] == 0


def test_raw_history_retention_changes_nothing_on_sqlite(sqlite_url: str) -> None:
    """SQLite has no partitions: the setting is a PostgreSQL one and must not delete rows there
    (a DELETE would take the current answers with it)."""
    sqlite_engine = make_engine(sqlite_url)
    write_batch(sqlite_engine, [MARCH, MAY])
    before = _seen_by_analysts(sqlite_engine)
    done = apply_retention(sqlite_engine, Retention(30, raw_history_days=1), NOW)
    assert done["partitions_created"] == 0 and done["partitions_dropped"] == 0
    assert _rows(sqlite_engine, "SELECT COUNT(*) FROM predictions") == [(6,)]
    assert _seen_by_analysts(sqlite_engine) == before
