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


def epoch_seconds(dialect: str, column: str) -> str:
    """A timestamp as seconds since the epoch, with its fraction."""
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM {column})"
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


def epoch_slot(dialect: str, column: str, seconds: int) -> str:
    """The UTC slot of `seconds` (3600: the hour, 60: the minute) a timestamp falls in, as an
    integer: seconds since the epoch // `seconds`, the same rows on both databases."""
    if dialect == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / {seconds}) AS BIGINT)"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / {seconds})"


def int_list_param(dialect: str, name: str, column: str = "value") -> str:
    """A SELECT of the integers passed as a JSON array in the parameter :name, as `column`."""
    if dialect == "postgresql":
        return (
            f"SELECT CAST(value AS BIGINT) AS {column} FROM json_array_elements_text(CAST(:{name} AS json))"
        )
    return f"SELECT CAST(value AS INTEGER) AS {column} FROM json_each(:{name})"
