"""SQL fragments that differ between PostgreSQL and SQLite, shared by views, rollups and series."""

from __future__ import annotations


def json_number(dialect: str, column: str, label: str) -> str:
    """A number stored under `label` in a JSON column, 0 when absent (used by views and alert series)."""
    if dialect == "postgresql":
        return f"COALESCE(({column}->>'{label}')::float, 0)"
    return f"COALESCE(json_extract({column}, '$.{label}'), 0)"


def signed_sentiment(
    dialect: str, column: str, positive: str = "positive", negative: str = "negative"
) -> str:
    """P(positive) - P(negative) from a distribution column: the views' and series' signed score."""
    return f"{json_number(dialect, column, positive)} - {json_number(dialect, column, negative)}"
