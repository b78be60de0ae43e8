"""Analyst views (`v_*`): the SQL that analysts query directly.

Time bucketing and JSON access differ between PostgreSQL and SQLite, so each view's SQL is
generated per dialect from one template; the column names are identical on both.
Every view reads each article's latest prediction per instruction (older model versions' rows
stay in `predictions` for comparison).
"""

from __future__ import annotations

from collections.abc import Iterator

_GRAINS = {"hourly": "hour", "daily": "day"}


def _bucket(dialect: str, column: str, grain: str) -> str:
    if dialect == "postgresql":
        return f"date_trunc('{grain}', {column} AT TIME ZONE 'UTC')"
    fmt = "%Y-%m-%d %H:00:00" if grain == "hour" else "%Y-%m-%d 00:00:00"
    return f"strftime('{fmt}', {column})"


def json_number(dialect: str, column: str, label: str) -> str:
    """A number stored under `label` in a JSON column, 0 when absent (used by views and alert series)."""
    if dialect == "postgresql":
        return f"COALESCE(({column}->>'{label}')::float, 0)"
    return f"COALESCE(json_extract({column}, '$.{label}'), 0)"


def _latest_predictions() -> str:
    return """
SELECT id, article_id, instruction, label, score, distribution, zero_shot, model_version, created_at
FROM (
    SELECT p.*, ROW_NUMBER() OVER (
        PARTITION BY p.article_id, p.instruction ORDER BY p.created_at DESC, p.id DESC
    ) AS rn
    FROM predictions p
) ranked
WHERE rn = 1"""


def _articles_classified(dialect: str) -> str:
    positive = json_number(dialect, "s.distribution", "positive")
    signed = f"{positive} - {json_number(dialect, 's.distribution', 'negative')}"
    return f"""
SELECT a.id AS article_id, a.source, a.url, a.title, a.published_at, a.ingested_at,
       t.label AS topic, t.score AS topic_score,
       s.label AS sentiment, s.score AS sentiment_score,
       CASE WHEN s.id IS NULL THEN NULL ELSE {signed} END AS sentiment_signed,
       s.model_version AS model_version
FROM articles a
LEFT JOIN v_latest_predictions t ON t.article_id = a.id AND t.instruction = 'topic'
LEFT JOIN v_latest_predictions s ON s.article_id = a.id AND s.instruction = 'sentiment'"""


def _series(dialect: str, grain: str, dimension: str) -> str:
    bucket = _bucket(dialect, "c.published_at", grain)
    if dimension == "topic":
        source, key = "v_articles_classified c", "c.topic"
    else:
        source, key = (
            "v_articles_classified c JOIN article_tickers k ON k.article_id = c.article_id",
            "k.ticker",
        )
    return f"""
SELECT {bucket} AS bucket, {key} AS {dimension},
       COUNT(*) AS items,
       SUM(CASE WHEN c.sentiment = 'negative' THEN 1 ELSE 0 END) AS negative,
       SUM(CASE WHEN c.sentiment = 'neutral' THEN 1 ELSE 0 END) AS neutral,
       SUM(CASE WHEN c.sentiment = 'positive' THEN 1 ELSE 0 END) AS positive,
       CAST(AVG(CASE WHEN c.sentiment = 'negative' THEN 1.0 ELSE 0.0 END) AS FLOAT) AS negative_share,
       CAST(AVG(c.sentiment_signed) AS FLOAT) AS mean_sentiment
FROM {source}
WHERE {key} IS NOT NULL
GROUP BY {bucket}, {key}"""


def view_definitions(dialect: str) -> Iterator[tuple[str, str]]:
    """(name, SELECT) pairs in dependency order, for one dialect ('postgresql' or 'sqlite')."""
    yield "v_latest_predictions", _latest_predictions()
    yield "v_articles_classified", _articles_classified(dialect)
    for suffix, grain in _GRAINS.items():
        for dimension in ("topic", "ticker"):
            yield f"v_{dimension}_sentiment_{suffix}", _series(dialect, grain, dimension)


def create_views_sql(dialect: str) -> list[str]:
    return [f"CREATE VIEW {name} AS {select}" for name, select in view_definitions(dialect)]


def drop_views_sql(dialect: str) -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name, _ in reversed(list(view_definitions(dialect)))]
