"""What the hourly rollups are keyed by, shared by the rollups (connectors/db/rollups.py) and
the per-article rows they sum (connectors/db/rollup_items.py)."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.db.sql_expressions import epoch_slot

DIRTY = "rollup_dirty_hours"
# Each article's counted rows (connectors/db/rollup_items.py): what a live hour is summed from.
ITEMS = "rollup_items"


@dataclass(frozen=True)
class Rollup:
    table: str
    dimension: str  # the key column, as the views name it
    # Further key columns after the dimension. Stored NOT NULL, with '' for a missing value: a
    # NULL in a primary key is refused by PostgreSQL, and two NULLs never compare equal when a
    # recount is matched against stored rows. The views show '' as NULL again.
    extra_keys: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.dimension, *self.extra_keys)


TOPIC = Rollup("rollup_topic_hourly", "topic")
TICKER = Rollup("rollup_ticker_hourly", "ticker")
ENTITY = Rollup("rollup_entity_hourly", "entity", ("kind", "ticker"))
ROLLUPS = (TOPIC, TICKER, ENTITY)
COUNTS = ("items", "negative", "neutral", "positive", "rated", "signed_sum")


def hour_of(dialect: str, column: str) -> str:
    """The UTC hour a timestamp falls in, as an integer."""
    return epoch_slot(dialect, column, 3600)


def hour_start(dialect: str, hour: str) -> str:
    """An hour's first instant, comparable with stored timestamps (index range scans)."""
    if dialect == "postgresql":
        return f"to_timestamp(({hour}) * 3600)"
    return f"strftime('%Y-%m-%d %H:%M:%S', ({hour}) * 3600, 'unixepoch')"
