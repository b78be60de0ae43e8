"""The current_* tables checked against a recount: the latest raw row per key by ranking."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, text

from connectors.db.current import TABLES, CurrentTable, ranked_latest_sql


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
