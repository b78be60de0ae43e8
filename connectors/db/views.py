"""Analyst views (`v_*`): the SQL that analysts query directly.

Time bucketing and JSON access differ between PostgreSQL and SQLite, so each view's SQL is
generated per dialect from one template; the column names are identical on both.
Every view reads each article's latest prediction per instruction (older model versions' rows
stay in `predictions` for comparison), and each entity's latest prediction per instruction.

Per-ticker series judge the sentiment *toward the ticker*: an article's entity-level sentiment
for that ticker's company where the model gave one (`entity_predictions`), else the article's
sentiment (cashtag-only tickers, articles stored before entity scope). `sentiment_source` says
which, per row of `v_ticker_sentiment_items`.

The latest rows come from `current_predictions` and `current_entity_predictions`, which
triggers keep (connectors/db/current.py). Migrations 0001 and 0005 created views that ranked
the raw tables instead (`current=False`), and 0001 before `entity_predictions` existed
(`entities=False`); 0006 created series views that aggregated the current tables directly
(`rollups=False`); each migration asks for the views of its own schema. The series views read
hourly rollups (connectors/db/rollups.py). The entity series views (`entity_series_views_sql`)
came with migration 0010 and read only tables, so the earlier migrations that drop and recreate
the other views never meet them. Migration 0011 made the series views count their live hours
from `rollup_items` (`items=True`); the migrations before it ask for `items=False`.
"""

from __future__ import annotations

from collections.abc import Iterator

from connectors.db.rollups import ENTITY as ENTITY_ROLLUP
from connectors.db.rollups import TICKER as TICKER_ROLLUP
from connectors.db.rollups import TOPIC as TOPIC_ROLLUP
from connectors.db.rollups import series_view_sql
from connectors.db.sql_expressions import signed_sentiment

_GRAINS = {"hourly": "hour", "daily": "day"}


def _bucket(dialect: str, column: str, grain: str) -> str:
    if dialect == "postgresql":
        return f"date_trunc('{grain}', {column} AT TIME ZONE 'UTC')"
    fmt = "%Y-%m-%d %H:00:00" if grain == "hour" else "%Y-%m-%d 00:00:00"
    return f"strftime('{fmt}', {column})"


def _latest(table: str, columns: str, key: str) -> str:
    """Each `key`'s latest row of `table` (by creation, then id): what the views read."""
    return f"""
SELECT {columns}
FROM (
    SELECT t.*, ROW_NUMBER() OVER (
        PARTITION BY {key} ORDER BY t.created_at DESC, t.id DESC
    ) AS rn
    FROM {table} t
) ranked
WHERE rn = 1"""


_PREDICTION_COLUMNS = (
    "article_id, instruction, label, score, distribution, zero_shot, model_version, created_at"
)
_ENTITY_COLUMNS = (
    "article_id, entity, kind, ticker, found, instruction, label, score, distribution, "
    "zero_shot, model_version, created_at"
)


def _latest_predictions(current: bool) -> str:
    if current:
        return f"SELECT prediction_id AS id, {_PREDICTION_COLUMNS} FROM current_predictions"
    return _latest("predictions", f"id, {_PREDICTION_COLUMNS}", "t.article_id, t.instruction")


def _articles_classified(dialect: str) -> str:
    signed = signed_sentiment(dialect, "s.distribution")
    return f"""
SELECT a.id AS article_id, a.source, a.url, a.title, a.published_at, a.ingested_at,
       t.label AS topic, t.score AS topic_score,
       s.label AS sentiment, s.score AS sentiment_score,
       CASE WHEN s.id IS NULL THEN NULL ELSE {signed} END AS sentiment_signed,
       s.model_version AS model_version
FROM articles a
LEFT JOIN v_latest_predictions t ON t.article_id = a.id AND t.instruction = 'topic'
LEFT JOIN v_latest_predictions s ON s.article_id = a.id AND s.instruction = 'sentiment'"""


def _latest_entity_predictions(current: bool) -> str:
    if current:
        return f"SELECT entity_prediction_id AS id, {_ENTITY_COLUMNS} FROM current_entity_predictions"
    return _latest("entity_predictions", f"id, {_ENTITY_COLUMNS}", "t.article_id, t.entity, t.instruction")


def _entity_sentiment(dialect: str) -> str:
    signed = signed_sentiment(dialect, "e.distribution")
    return f"""
SELECT e.article_id, a.published_at, a.title, e.entity, e.kind, e.ticker, e.found,
       e.label AS sentiment, e.score AS sentiment_score, {signed} AS sentiment_signed,
       e.zero_shot, e.model_version
FROM v_latest_entity_predictions e
JOIN articles a ON a.id = e.article_id
WHERE e.instruction = 'sentiment'"""


def _ticker_sentiment_items() -> str:
    """One row per (article, ticker): the sentiment toward the ticker where the model judged it,
    else the article's. Several entities of one article can share a ticker ("Tesla" and "$TSLA"
    given separately): the first by name answers, so the choice is stable."""
    return """
SELECT c.article_id, c.published_at, k.ticker,
       COALESCE(e.sentiment, c.sentiment) AS sentiment,
       COALESCE(e.sentiment_signed, c.sentiment_signed) AS sentiment_signed,
       CASE WHEN e.sentiment IS NOT NULL THEN 'entity' ELSE 'article' END AS sentiment_source,
       COALESCE(e.model_version, c.model_version) AS model_version
FROM v_articles_classified c
JOIN article_tickers k ON k.article_id = c.article_id
LEFT JOIN (
    SELECT s.*, ROW_NUMBER() OVER (
        PARTITION BY s.article_id, s.ticker ORDER BY s.entity
    ) AS rn
    FROM v_entity_sentiment s
    WHERE s.ticker IS NOT NULL
) e ON e.article_id = k.article_id AND e.ticker = k.ticker AND e.rn = 1"""


def aggregate_series_sql(dialect: str, grain: str, dimension: str, entities: bool) -> str:
    """A series aggregated from the per-item views: what the series views were before the
    rollups, and the recount the tests hold the rollup-backed views to."""
    bucket = _bucket(dialect, "c.published_at", grain)
    extra = ""
    if dimension == "topic":
        source, key = "v_articles_classified c", "c.topic"
    elif dimension == "entity":
        source, key, extra = "v_entity_sentiment c", "c.entity", ", c.kind, c.ticker"
    elif entities:
        source, key = "v_ticker_sentiment_items c", "c.ticker"
    else:
        source, key = (
            "v_articles_classified c JOIN article_tickers k ON k.article_id = c.article_id",
            "k.ticker",
        )
    return f"""
SELECT {bucket} AS bucket, {key} AS {dimension}{extra},
       COUNT(*) AS items,
       SUM(CASE WHEN c.sentiment = 'negative' THEN 1 ELSE 0 END) AS negative,
       SUM(CASE WHEN c.sentiment = 'neutral' THEN 1 ELSE 0 END) AS neutral,
       SUM(CASE WHEN c.sentiment = 'positive' THEN 1 ELSE 0 END) AS positive,
       CAST(AVG(CASE WHEN c.sentiment = 'negative' THEN 1.0 ELSE 0.0 END) AS FLOAT) AS negative_share,
       CAST(AVG(c.sentiment_signed) AS FLOAT) AS mean_sentiment
FROM {source}
WHERE {key} IS NOT NULL
GROUP BY {bucket}, {key}{extra}"""


def view_definitions(
    dialect: str, entities: bool = True, current: bool = True, rollups: bool = True, items: bool = True
) -> Iterator[tuple[str, str]]:
    """(name, SELECT) pairs in dependency order, for one dialect ('postgresql' or 'sqlite')."""
    yield "v_latest_predictions", _latest_predictions(current)
    yield "v_articles_classified", _articles_classified(dialect)
    if entities:
        yield "v_latest_entity_predictions", _latest_entity_predictions(current)
        yield "v_entity_sentiment", _entity_sentiment(dialect)
        yield "v_ticker_sentiment_items", _ticker_sentiment_items()
    for suffix, grain in _GRAINS.items():
        for dimension in ("topic", "ticker"):
            if rollups and entities and current:
                rollup = TOPIC_ROLLUP if dimension == "topic" else TICKER_ROLLUP
                yield f"v_{dimension}_sentiment_{suffix}", series_view_sql(dialect, rollup, grain, items)
            else:
                yield (
                    f"v_{dimension}_sentiment_{suffix}",
                    aggregate_series_sql(dialect, grain, dimension, entities),
                )


def create_views_sql(
    dialect: str, entities: bool = True, current: bool = True, rollups: bool = True, items: bool = True
) -> list[str]:
    return [
        f"CREATE VIEW {name} AS {select}"
        for name, select in view_definitions(dialect, entities, current, rollups, items)
    ]


def drop_views_sql(dialect: str, entities: bool = True) -> list[str]:
    names = [name for name, _ in view_definitions(dialect, entities)]
    return [f"DROP VIEW IF EXISTS {name}" for name in reversed(names)]


ENTITY_SERIES_VIEWS = {"v_entity_sentiment_hourly": "hour", "v_entity_sentiment_daily": "day"}


def entity_series_views_sql(dialect: str, items: bool = True) -> list[str]:
    """Per bucket and entity (name, kind, ticker): counts of each entity's own sentiment, summed
    from `rollup_entity_hourly`: what "which entities had the worst week" reads, at the cost of
    the buckets and entities in the window rather than of every article in it."""
    return [
        f"CREATE VIEW {name} AS {series_view_sql(dialect, ENTITY_ROLLUP, grain, items)}"
        for name, grain in ENTITY_SERIES_VIEWS.items()
    ]


def drop_entity_series_views_sql() -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name in ENTITY_SERIES_VIEWS]


SERIES_VIEWS = {
    f"v_{dimension}_sentiment_{suffix}": (dimension, grain)
    for suffix, grain in _GRAINS.items()
    for dimension in ("topic", "ticker", "entity")
}


def series_views_sql(dialect: str, items: bool = True) -> list[str]:
    """The six rollup-backed series views, dropped and created again: how migration 0011 points
    their live hours at `rollup_items` (nothing depends on them, so no other view is touched)."""
    rollup = {"topic": TOPIC_ROLLUP, "ticker": TICKER_ROLLUP, "entity": ENTITY_ROLLUP}
    return [f"DROP VIEW IF EXISTS {name}" for name in SERIES_VIEWS] + [
        f"CREATE VIEW {name} AS {series_view_sql(dialect, rollup[dimension], grain, items)}"
        for name, (dimension, grain) in SERIES_VIEWS.items()
    ]
