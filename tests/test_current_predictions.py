"""current_predictions / current_entity_predictions: the database keeps each key's latest answer,
exactly what ranking the raw rows gives, whatever writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, text
from sqlalchemy import insert as insert_into

from connectors.db.engine import make_engine
from connectors.db.migrate import alembic_config, upgrade
from connectors.db.writer import ArticleRow, EntityPredictionRow, PredictionRow, write_batch
from pipeline.devstack import postgres as devpg
from tests.current_helpers import assert_current_is_latest, assert_series_views_are_exact

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _article(article_id: str, versions: list[tuple[str, str]]) -> ArticleRow:
    """One article with, per (model version, sentiment label), an article and an entity answer."""
    return ArticleRow(
        id=article_id,
        source="t",
        url=None,
        title=f"Ford {article_id}",
        body="",
        published_at=T0,
        fetched_at=T0,
        lang="en",
        tickers=["F"],
        predictions=[
            PredictionRow("sentiment", label, 0.8, {label: 0.8}, version) for version, label in versions
        ]
        + [PredictionRow("topic", "Earnings", 0.9, {"Earnings": 0.9}, versions[0][0])],
        entity_predictions=[
            EntityPredictionRow("Ford", "company", "F", True, "sentiment", label, 0.7, {label: 0.7}, version)
            for version, label in versions
        ],
    )


def _utc(stamp: datetime | str) -> datetime:
    """A timestamp read with plain SQL: SQLite hands back text without a zone."""
    value = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _write_old_schema(engine: Engine, article: ArticleRow) -> None:
    """`article` written into an older revision's tables (the writer writes the newest schema's
    columns): each row gets only the columns its table has there."""
    tables = MetaData()
    tables.reflect(engine, only=["articles", "article_tickers", "predictions", "entity_predictions"])

    def insert(name: str, rows: list[dict[str, object]]) -> None:
        table = tables.tables[name]
        with engine.begin() as conn:
            conn.execute(insert_into(table), [{k: v for k, v in r.items() if k in table.c} for r in rows])

    insert("articles", [{**article.__dict__, "ingested_at": T0}])
    insert("article_tickers", [{"article_id": article.id, "ticker": t} for t in article.tickers])
    created = {"created_at": datetime.now(UTC)}
    insert("predictions", [{"article_id": article.id, **p.__dict__, **created} for p in article.predictions])
    insert(
        "entity_predictions",
        [{"article_id": article.id, **e.__dict__, **created} for e in article.entity_predictions],
    )


def _current(engine: Engine) -> dict[str, tuple[str, str]]:
    """article -> (sentiment label, model version) as the analyst view shows it."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT article_id, sentiment, model_version FROM v_articles_classified")
        ).all()
    return {str(a): (str(s), str(v)) for a, s, v in rows}


def _entity(engine: Engine, article_id: str) -> tuple[str, str]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT sentiment, model_version FROM v_entity_sentiment WHERE article_id = :a"),
            {"a": article_id},
        ).one()
    return str(row[0]), str(row[1])


def test_current_answers_follow_inserts_redeliveries_late_rows_updates_and_deletes(engine: Engine) -> None:
    write_batch(engine, [_article("a1", [("v1", "negative")]), _article("a2", [("v1", "positive")])])
    write_batch(engine, [_article("a1", [("v1", "negative")])])  # a redelivered batch: no new rows
    assert _current(engine) == {"a1": ("negative", "v1"), "a2": ("positive", "v1")}
    assert assert_current_is_latest(engine) == 6

    # Two versions of one key in one statement (PostgreSQL's statement trigger sees both).
    write_batch(engine, [_article("a3", [("v1", "negative"), ("v2", "positive")])])
    write_batch(engine, [_article("a1", [("v2", "positive")])])
    assert _current(engine)["a1"] == ("positive", "v2") and _entity(engine, "a1") == ("positive", "v2")
    assert assert_current_is_latest(engine) == 9
    assert assert_series_views_are_exact(engine) == 6  # topic, ticker, entity x hour, day

    # A row written late with an older creation time (a rollback re-classifying) is not latest.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO predictions (article_id, instruction, label, score, distribution, "
                "zero_shot, model_version, created_at, published_at) SELECT 'a1', 'sentiment', "
                "'neutral', 0.5, '{\"neutral\": 0.5}', false, 'v0', :t, published_at "
                "FROM articles WHERE id = 'a1'"
            ),
            {"t": T0 - timedelta(days=30)},
        )
    assert _current(engine)["a1"] == ("positive", "v2")
    assert_current_is_latest(engine)

    # An UPDATE that makes v2's answers older than v1's hands the key back to v1.
    with engine.begin() as conn:
        for table in ("predictions", "entity_predictions"):
            conn.execute(
                text(f"UPDATE {table} SET created_at = :t WHERE model_version = 'v2'"),
                {"t": T0 - timedelta(days=60)},
            )
    assert _current(engine)["a1"] == ("negative", "v1") and _entity(engine, "a1") == ("negative", "v1")
    assert_current_is_latest(engine)
    assert_series_views_are_exact(engine)

    # Deleting the current row: the newest remaining one takes its place; deleting a superseded
    # one changes nothing; deleting an article takes its current rows with it.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM predictions WHERE article_id = 'a1' AND model_version = 'v1'"))
        conn.execute(text("DELETE FROM entity_predictions WHERE article_id = 'a3' AND model_version = 'v1'"))
    assert _current(engine)["a1"] == ("neutral", "v0")  # v0 (30 days old) is newer than v2 (60)
    assert _entity(engine, "a3") == ("positive", "v2")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id = 'a2'"))
    assert set(_current(engine)) == {"a1", "a3"}
    assert_current_is_latest(engine)
    assert_series_views_are_exact(engine)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT COUNT(*) FROM current_predictions WHERE article_id = 'a2'")).scalar()
    assert left == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_fills_current_answers_from_the_rows_already_stored(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    name = f"m_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'finsent.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = devpg.create_database(server, name)
    upgrade(url, "0005")
    engine = make_engine(url)
    try:
        _write_old_schema(engine, _article("a1", [("v1", "negative"), ("v2", "positive")]))
        _write_old_schema(engine, _article("a2", [("v1", "neutral")]))
        upgrade(url)
        with engine.connect() as conn:  # 0008 copied each article's publication time
            stamps = conn.execute(text("SELECT published_at FROM predictions")).scalars().all()
        assert len(stamps) == 5 and {_utc(s) for s in stamps} == {T0}
        assert _current(engine) == {"a1": ("positive", "v2"), "a2": ("neutral", "v1")}
        assert assert_current_is_latest(engine) == 6
        command.downgrade(alembic_config(url), "0005")  # the ranking views come back
        assert _current(engine) == {"a1": ("positive", "v2"), "a2": ("neutral", "v1")}
        upgrade(url)
        assert assert_current_is_latest(engine) == 6
        assert assert_series_views_are_exact(engine) == 6  # topic, ticker, entity x hour, day
    finally:
        engine.dispose()
        if kind == "postgresql":
            devpg.drop_database(server, name)


@pytest.mark.postgres
def test_a_time_bounded_view_query_ranks_nothing(pg_engine: Engine) -> None:
    """The plan reads the current table by key: no window over the whole prediction history."""
    with pg_engine.connect() as conn:
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                text(
                    "EXPLAIN SELECT topic, COUNT(*) FROM v_articles_classified "
                    "WHERE published_at > now() - interval '7 days' GROUP BY topic"
                )
            )
        )
    assert "WindowAgg" not in plan and "current_predictions" in plan, plan
