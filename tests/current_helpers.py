"""The current_* tables checked against a recount: the latest raw row per key by ranking."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, text

from connectors.db import rollup_items, rollups
from connectors.db.current import TABLES, CurrentTable, ranked_latest_sql
from connectors.db.views import aggregate_series_sql


def _rows(engine: Engine, sql: str) -> set[tuple[Any, ...]]:
    def normal(value: Any) -> Any:
        # JSON comes back as text on SQLite and as a dict on PostgreSQL; booleans as 0/1 on SQLite.
        if isinstance(value, str) and value.startswith("{"):
            return json.dumps(json.loads(value), sort_keys=True)
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
        if isinstance(value, bool):
            return int(value)
        return str(value) if value is not None and not isinstance(value, int | float) else value

    with engine.connect() as conn:
        return {tuple(normal(v) for v in row) for row in conn.execute(text(sql)).all()}


def current_and_recount(
    engine: Engine, table: CurrentTable
) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    stored = _rows(engine, f"SELECT {', '.join(table.columns)} FROM {table.current}")
    return stored, _rows(engine, ranked_latest_sql(table))


def assert_current_is_latest(engine: Engine) -> int:
    """Every current_* table equals the ranking of its raw table; returns the rows compared."""
    compared = 0
    for table in TABLES:
        stored, recount = current_and_recount(engine, table)
        assert stored == recount, (
            f"{table.current} differs from the latest {table.raw}: "
            f"{len(stored - recount)} extra, {len(recount - stored)} missing"
        )
        compared += len(stored)
    return compared


def _series_rows(engine: Engine, sql: str) -> set[tuple[Any, ...]]:
    """Rows with floats rounded: a sum of hourly sums differs from one sum in the last bits."""
    with engine.connect() as conn:
        return {
            tuple(round(v, 9) if isinstance(v, float) else str(v) for v in row)
            for row in conn.execute(text(sql)).all()
        }


def assert_series_views_are_exact(engine: Engine) -> int:
    """The rollup-backed series views equal an aggregation of the current answers, before and
    after folding, and the folded rollup tables equal a recount; returns the rows compared."""
    dialect = engine.dialect.name
    columns = "bucket, {key}, items, negative, neutral, positive, negative_share, mean_sentiment"
    keys = {rollup.dimension: ", ".join(rollup.keys) for rollup in rollups.ROLLUPS}
    expected = {
        (grain, dimension): _series_rows(
            engine,
            f"SELECT {columns.format(key=keys[dimension])} "
            f"FROM ({aggregate_series_sql(dialect, grain, dimension, True)}) s",
        )
        for grain in ("hour", "day")
        for dimension in keys
    }

    def check(when: str) -> None:
        for (grain, dimension), rows in expected.items():
            view = f"v_{dimension}_sentiment_{'hourly' if grain == 'hour' else 'daily'}"
            got = _series_rows(engine, f"SELECT {columns.format(key=keys[dimension])} FROM {view}")
            assert got == rows, f"{view} {when}: {len(got - rows)} extra, {len(rows - got)} missing"

    items = _series_rows(engine, f"SELECT {', '.join(rollup_items.COLUMNS)} FROM {rollups.ITEMS}")
    items_recount = _series_rows(engine, rollup_items.recount_sql(dialect))
    assert items == items_recount, (
        f"{rollups.ITEMS}: {len(items - items_recount)} extra, {len(items_recount - items)} missing"
    )
    check("before folding")
    rollups.fold_all(engine)
    assert rollups.dirty_hours(engine) == 0
    for rollup in rollups.ROLLUPS:
        stored = _series_rows(
            engine, f"SELECT hour, {', '.join(rollup.keys)}, {', '.join(rollups.COUNTS)} FROM {rollup.table}"
        )
        recount = _series_rows(
            engine,
            rollups.live_counts_sql(
                dialect,
                rollup,
                f"SELECT DISTINCT {rollups.hour_of(dialect, 'published_at')} AS hour FROM articles",
            ),
        )
        assert stored == recount, (
            f"{rollup.table}: {len(stored - recount)} extra, {len(recount - stored)} missing"
        )
    check("after folding")
    return sum(len(rows) for rows in expected.values())
