"""Hourly rollups behind the analyst series views, exact by recounting what changed.

`v_topic_sentiment_*`, `v_ticker_sentiment_*` and `v_entity_sentiment_hourly|daily` aggregate
every article ever classified; at a month of one newswire that is a few seconds per query and
grows with history. They read instead `rollup_topic_hourly`, `rollup_ticker_hourly` and
`rollup_entity_hourly` (per UTC hour of publication and key: items, negative, neutral, positive,
rated, signed-sentiment sum; an entity's key is its name, kind and ticker).

Exactness without delta arithmetic: triggers on everything a series reads (the current answers,
the article-ticker links, an article's deletion or new publication time) put the touched hours
into `rollup_dirty_hours`, in the writer's own transaction. A dirty hour's rollup rows are never
read: the views take stored rows for clean hours and count dirty hours live, summing each
article's counted rows that `rollup_items` holds (kept equal to the current answers by triggers
in the same transaction, connectors/db/rollup_items.py: one index range scan per hour), so a view
is exact the moment the writer commits, whether or not a fold has run.
`fold` then recounts dirty hours into the rollup tables. Redelivery writes nothing (no trigger
fires); a model swap or a backfill changes current answers, which marks their hours; a fold
killed half-way rolls back with its transaction and leaves the hours dirty.

Concurrency (PostgreSQL): the fold deletes the dirty rows it takes and recounts in the same
transaction. A writer committing into a taken hour meanwhile blocks on that row's uniqueness
until the fold commits, then marks the hour again: the next fold recounts it. A writer that
committed before the recount statement began is in the recount. Either way no change is lost.

Hours are integers (seconds since the epoch // 3600) so that the same arithmetic, and the same
rows, serve both dialects; the views turn them back into the buckets they always showed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, text

from connectors.db import rollup_items, scan_rollup, triggers
from connectors.db.rollup_keys import COUNTS as COUNTS
from connectors.db.rollup_keys import DIRTY as DIRTY
from connectors.db.rollup_keys import ENTITY as ENTITY
from connectors.db.rollup_keys import ITEMS as ITEMS
from connectors.db.rollup_keys import ROLLUPS as ROLLUPS
from connectors.db.rollup_keys import TICKER as TICKER
from connectors.db.rollup_keys import TOPIC as TOPIC
from connectors.db.rollup_keys import Rollup as Rollup
from connectors.db.rollup_keys import hour_of as hour_of
from connectors.db.rollup_keys import hour_start
from connectors.db.sql_expressions import int_list_param
from connectors.db.triggers import statement_trigger_sql

# Above this many hours in one fold, sum the items by one scan (see live_counts_sql).
BULK_HOURS = 24


def bucket_of_hour(dialect: str, hour: str, grain: str) -> str:
    """The bucket the views always showed (timestamp without zone, UTC) for an hour number."""
    if dialect == "postgresql":
        instant = f"(to_timestamp(({hour}) * 3600) AT TIME ZONE 'UTC')"
        return instant if grain == "hour" else f"date_trunc('day', {instant})"
    fmt = "%Y-%m-%d %H:00:00" if grain == "hour" else "%Y-%m-%d 00:00:00"
    return f"strftime('{fmt}', ({hour}) * 3600, 'unixepoch')"


def live_counts_sql(dialect: str, rollup: Rollup, hours: str, bulk: bool = False, items: bool = True) -> str:
    """Counts per (hour, key) of the hours that `hours` (a SELECT of distinct `hour` values)
    yields, summed from the articles' rows in `rollup_items` (connectors/db/rollup_items.py),
    which the database keeps equal to the current answers. Columns: hour, key, the extra keys,
    COUNTS. `bulk` (many hours: a fold catching up): one scan joined to the hours instead of an
    index range scan per hour. `items=False`: the same rows looked up from the current tables
    per article, as the views of migrations 0007-0010 did before `rollup_items` existed."""
    extra = "".join(f", i.{k}" for k in rollup.extra_keys)
    if not items:
        counted = rollup_items.counted_rows_sql(dialect, rollup, _articles_of_hours(dialect, hours))
        extra_c = "".join(f", c.{k}" for k in rollup.extra_keys)
        items_from = f"""(
    SELECT {hour_of(dialect, "c.published_at")} AS hour, c.key AS series_key{extra_c},
           c.sentiment, c.sentiment_signed
    FROM ({counted}) c WHERE c.key IS NOT NULL
) i"""
    elif dialect == "postgresql" and not bulk:
        # LATERAL + OFFSET 0: an index range scan per hour. Joined, PostgreSQL may estimate the
        # hours' rows at a fraction of the table and scan all of it.
        items_from = f"""({hours}) d
CROSS JOIN LATERAL (
    SELECT i.* FROM {ITEMS} i WHERE i.dimension = '{rollup.dimension}' AND i.hour = d.hour OFFSET 0
) i"""
    else:
        items_from = f"{ITEMS} i WHERE i.dimension = '{rollup.dimension}' AND i.hour IN ({hours})"
    # signed_sum CAST: on SQLite a sum of answers without a positive or negative probability is
    # the integer 0, which a recount compared with the stored 0.0 called a difference.
    return f"""
SELECT i.hour, i.series_key AS key{extra},
       COUNT(*) AS items,
       SUM(CASE WHEN i.sentiment = 'negative' THEN 1 ELSE 0 END) AS negative,
       SUM(CASE WHEN i.sentiment = 'neutral' THEN 1 ELSE 0 END) AS neutral,
       SUM(CASE WHEN i.sentiment = 'positive' THEN 1 ELSE 0 END) AS positive,
       COUNT(i.sentiment) AS rated,
       CAST(COALESCE(SUM(i.sentiment_signed), 0.0) AS FLOAT) AS signed_sum
FROM {items_from}
GROUP BY i.hour, i.series_key{extra}"""


def _articles_of_hours(dialect: str, hours: str) -> str:
    """A FROM clause binding `a` (id, published_at) to the articles published in `hours`, by
    range scans of the published_at index."""
    if dialect == "postgresql":
        # LATERAL + OFFSET 0: PostgreSQL misjudged an hour's articles at a ninth of the table and
        # hashed every current answer when the range was joined.
        return f"""FROM ({hours}) d
CROSS JOIN LATERAL (
    SELECT a.id, a.published_at FROM articles a
    WHERE a.published_at >= {hour_start(dialect, "d.hour")}
      AND a.published_at < {hour_start(dialect, "d.hour + 1")}
    OFFSET 0
) a"""
    return f"""FROM ({hours}) d
JOIN articles a
  ON a.published_at >= {hour_start(dialect, "d.hour")}
 AND a.published_at < {hour_start(dialect, "d.hour + 1")}"""


def series_view_sql(dialect: str, rollup: Rollup, grain: str, items: bool = True) -> str:
    """A `v_<dimension>_sentiment_<grain>` view: stored rows of clean hours plus dirty hours
    counted live, with the columns and meaning the ranked views had (negative_share over all
    items, mean_sentiment over the rated ones). An hour's rows are already one per key (stored
    and live hours are disjoint), so the hourly view aggregates nothing: grouping 180,000 rows
    by a computed bucket took 0.4 s of the "most negative tickers per hour" query."""
    extra = "".join(f", r.{k}" for k in rollup.extra_keys)
    stored = f"""
SELECT r.hour, r.{rollup.dimension} AS key{extra}, {", ".join(f"r.{c}" for c in COUNTS)}
FROM {rollup.table} r
WHERE NOT EXISTS (SELECT 1 FROM {DIRTY} d WHERE d.hour = r.hour)"""
    live = live_counts_sql(dialect, rollup, f"SELECT hour FROM {DIRTY}", items=items)
    bucket = bucket_of_hour(dialect, "u.hour", grain)
    extra_keys = "".join(f", u.{k}" for k in rollup.extra_keys)
    shown_keys = "".join(f", NULLIF(u.{k}, '') AS {k}" for k in rollup.extra_keys)
    if grain == "hour":
        counts, group = {c: f"u.{c}" for c in COUNTS}, ""
    else:
        counts, group = {c: f"SUM(u.{c})" for c in COUNTS}, f"\nGROUP BY {bucket}, u.key{extra_keys}"
    return f"""
SELECT {bucket} AS bucket, u.key AS {rollup.dimension}{shown_keys},
       CAST({counts["items"]} AS BIGINT) AS items,
       CAST({counts["negative"]} AS BIGINT) AS negative,
       CAST({counts["neutral"]} AS BIGINT) AS neutral,
       CAST({counts["positive"]} AS BIGINT) AS positive,
       CAST({counts["negative"]} AS FLOAT) / {counts["items"]} AS negative_share,
       CAST({counts["signed_sum"]} AS FLOAT) / NULLIF({counts["rated"]}, 0) AS mean_sentiment
FROM ({stored}
UNION ALL{live}) u{group}"""


# What marks hours dirty: (table, events, how the row finds its article's publication time).
# An article deleted takes its current answers and links with it by cascade; by the time their
# triggers run the article row is gone, so the article's own DELETE trigger marks its hour.
_MARKED = (
    ("current_predictions", ("INSERT", "UPDATE", "DELETE")),
    ("current_entity_predictions", ("INSERT", "UPDATE", "DELETE")),
    ("article_tickers", ("INSERT", "DELETE")),
)


def _trigger_name(table: str, event: str) -> str:
    return f"trg_{table}_rollup_{event.lower()}"


def _postgresql_triggers(dialect: str) -> list[str]:
    statements: list[str] = []

    def add(table: str, event: str, body: str, transitions: str) -> None:
        statements.extend(statement_trigger_sql(_trigger_name(table, event), table, event, body, transitions))

    def mark_articles(rows: str) -> str:
        return (
            f"INSERT INTO {DIRTY} (hour) SELECT DISTINCT {hour_of(dialect, 'a.published_at')} "
            f"FROM {rows} r JOIN articles a ON a.id = r.article_id ON CONFLICT DO NOTHING;"
        )

    for table, events in _MARKED:
        for event in events:
            rows = "old_rows" if event == "DELETE" else "new_rows"
            transitions = "OLD TABLE AS old_rows" if event == "DELETE" else "NEW TABLE AS new_rows"
            add(table, event, mark_articles(rows), transitions)
    own = (
        f"INSERT INTO {DIRTY} (hour) SELECT DISTINCT {hour_of(dialect, 'r.published_at')} "
        "FROM {rows} r ON CONFLICT DO NOTHING;"
    )
    add("articles", "DELETE", own.format(rows="old_rows"), "OLD TABLE AS old_rows")
    # Only articles whose publication time changed, as SQLite's `UPDATE OF published_at`: a
    # trigger with transition tables may not name columns, and without the filter the body
    # retention's hourly UPDATE re-dirtied every hour it emptied bodies in.
    moved = (
        f"INSERT INTO {DIRTY} (hour) SELECT DISTINCT h FROM old_rows o JOIN new_rows n ON n.id = o.id "
        f"CROSS JOIN LATERAL (VALUES ({hour_of(dialect, 'o.published_at')}), "
        f"({hour_of(dialect, 'n.published_at')})) AS moved(h) "
        "WHERE o.published_at IS DISTINCT FROM n.published_at ON CONFLICT DO NOTHING;"
    )
    add("articles", "UPDATE", moved, "OLD TABLE AS old_rows NEW TABLE AS new_rows")
    return statements


def _sqlite_triggers(dialect: str) -> list[str]:
    # Not INSERT OR IGNORE: SQLite lets the outer statement's conflict policy override a
    # trigger's, so the worker's plain INSERT ... ON CONFLICT DO NOTHING turned a second mark of
    # the same hour into a UNIQUE error that failed the whole batch.
    def mark(hour: str, source: str = "") -> str:
        return (
            f"    INSERT INTO {DIRTY} (hour) SELECT h FROM (SELECT {hour} AS h{source}) "
            f"WHERE h IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {DIRTY} d WHERE d.hour = h);"
        )

    statements: list[str] = []
    for table, events in _MARKED:
        for event in events:
            row = "OLD" if event == "DELETE" else "NEW"
            statements.append(
                f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} BEGIN\n"
                + mark(hour_of(dialect, "a.published_at"), f" FROM articles a WHERE a.id = {row}.article_id")
                + "\nEND"
            )
    statements.append(
        f"CREATE TRIGGER {_trigger_name('articles', 'DELETE')} AFTER DELETE ON articles BEGIN\n"
        + mark(hour_of(dialect, "OLD.published_at"))
        + "\nEND"
    )
    statements.append(
        f"CREATE TRIGGER {_trigger_name('articles', 'UPDATE')} AFTER UPDATE OF published_at ON articles "
        "BEGIN\n"
        + mark(hour_of(dialect, "OLD.published_at"))
        + "\n"
        + mark(hour_of(dialect, "NEW.published_at"))
        + "\nEND"
    )
    return statements


def create_triggers_sql(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return _postgresql_triggers(dialect)
    if dialect == "sqlite":
        return _sqlite_triggers(dialect)
    raise RuntimeError(f"unsupported database dialect {dialect!r}: use PostgreSQL or SQLite")


def _trigger_names() -> list[tuple[str, str]]:
    names = [(table, _trigger_name(table, event)) for table, events in _MARKED for event in events]
    return names + [("articles", _trigger_name("articles", e)) for e in ("DELETE", "UPDATE")]


def drop_triggers_sql(dialect: str) -> list[str]:
    return triggers.drop_triggers_sql(dialect, _trigger_names())


def mark_all_sql(dialect: str) -> str:
    """Every hour with an article: how the migration makes existing history count (live until
    the first folds recount it)."""
    conflict = "ON CONFLICT DO NOTHING" if dialect == "postgresql" else ""
    verb = "INSERT" if dialect == "postgresql" else "INSERT OR IGNORE"
    hour = hour_of(dialect, "published_at")
    return f"{verb} INTO {DIRTY} (hour) SELECT DISTINCT {hour} FROM articles {conflict}"


def _hours_param(dialect: str) -> str:
    """A SELECT of the hours passed as a JSON array in :hours."""
    return int_list_param(dialect, "hours", "hour")


def fold(engine: Engine, max_hours: int = 48) -> int:
    """Recount up to `max_hours` dirty hours (oldest first) into the rollup tables (the hourly
    ones and the alert scan's minutes), in one transaction; returns how many hours it folded.
    Run it until it returns 0 to catch up."""
    dialect = engine.dialect.name
    with engine.begin() as conn:
        wanted = [
            int(h)
            for (h,) in conn.execute(
                text(f"SELECT hour FROM {DIRTY} ORDER BY hour LIMIT :n"), {"n": max_hours}
            )
        ]
        if not wanted:
            return 0
        # Only the hours this transaction really removed: a concurrent fold that took one first
        # recounts it itself (PostgreSQL skips rows another transaction deleted).
        taken = [
            int(h)
            for (h,) in conn.execute(
                text(f"DELETE FROM {DIRTY} WHERE hour IN ({_hours_param(dialect)}) RETURNING hour"),
                {"hours": json.dumps(wanted)},
            )
        ]
        if not taken:
            return 0
        hours = json.dumps(sorted(taken))
        for rollup in ROLLUPS:
            conn.execute(
                text(f"DELETE FROM {rollup.table} WHERE hour IN ({_hours_param(dialect)})"), {"hours": hours}
            )
            columns = ", ".join(COUNTS)
            extra = "".join(f", {k}" for k in rollup.extra_keys)
            recount = live_counts_sql(dialect, rollup, _hours_param(dialect), bulk=len(taken) > BULK_HOURS)
            conn.execute(
                text(
                    f"INSERT INTO {rollup.table} (hour, {rollup.dimension}{extra}, {columns}) "
                    f"SELECT hour, key{extra}, {columns} FROM ({recount}) x"
                ),
                {"hours": hours},
            )
        _recount_scan_minutes(conn, dialect, sorted(taken), hours)
    return len(taken)


def _recount_scan_minutes(conn: Connection, dialect: str, taken: list[int], hours: str) -> None:
    """The alert scan's minute rows of the taken hours, recounted under the same dirty marks
    (connectors/db/scan_rollup.py)."""
    conn.execute(text(scan_rollup.delete_hours_sql(_hours_param(dialect))), {"hours": hours})
    ranges = scan_rollup.Ranges.of([(h * 3600, (h + 1) * 3600) for h in taken])
    for dimension in (scan_rollup.TICKER, None):
        conn.execute(
            text(scan_rollup.recount_sql(dialect, dimension, ranges)).bindparams(*ranges.bindparams()),
            {**ranges.params, "sentiment": scan_rollup.SENTIMENT, "negative": scan_rollup.NEGATIVE},
        )


def fold_all(engine: Engine, max_hours: int = 48) -> int:
    """Fold what is dirty now; returns hours folded. Bounded by the hours dirty at the start:
    under live traffic the newest hour is marked again after every fold, and an unbounded loop
    would recount it forever."""
    total = 0
    for _ in range(dirty_hours(engine) // max_hours + 1):
        folded = fold(engine, max_hours)
        total += folded
        if folded < max_hours:
            break
    return total


def dirty_hours(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {DIRTY}")).scalar_one())


def _hours_sql(dialect: str, rollup: Rollup, key: str | None) -> tuple[str, dict[str, Any]]:
    """The SELECT behind read_hours (its columns, from :first on) and its parameters but :first."""
    if rollup.extra_keys:
        raise ValueError(f"{rollup.table}: read_hours and top_keys read rollups keyed by one column")
    only_key = f" AND r.{rollup.dimension} = :key" if key is not None else ""
    stored = (
        f"SELECT r.hour, r.{rollup.dimension} AS key, {', '.join(f'r.{c}' for c in COUNTS)} "
        f"FROM {rollup.table} r "
        f"WHERE r.hour >= :first{only_key} AND NOT EXISTS (SELECT 1 FROM {DIRTY} d WHERE d.hour = r.hour)"
    )
    live = live_counts_sql(dialect, rollup, f"SELECT hour FROM {DIRTY} WHERE hour >= :first")
    live_key = " WHERE x.key = :key" if key is not None else ""
    counted = ", ".join(f"x.{c}" for c in COUNTS)
    statement = f"{stored} UNION ALL SELECT x.hour, x.key, {counted} FROM ({live}) x{live_key}"
    return statement, ({"key": key} if key is not None else {})


def read_hours(
    engine: Engine, rollup: Rollup, first_hour: int, key: str | None = None
) -> list[tuple[Any, ...]]:
    """(hour, key, items, negative, neutral, positive, rated, signed_sum) for every hour from
    `first_hour` on (one key, or all): stored rows of clean hours by the primary key's range,
    dirty hours counted live. What a chart of hourly buckets reads, whatever the history's size."""
    statement, params = _hours_sql(engine.dialect.name, rollup, key)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(statement), params | {"first": first_hour})]


def top_keys(engine: Engine, rollup: Rollup, first_hour: int, limit: int) -> list[tuple[str, int]]:
    """The `limit` keys with the most items from `first_hour` on, most first (ties by key): the
    hours of read_hours summed by the database. Summed here in Python instead, a week of 500
    tickers was 84,000 rows sent and added up: the dashboard's ticker keys took 258 ms at 10 M
    articles with two hours live, 44 ms summed by the database (docs/benchmarks.md)."""
    statement, params = _hours_sql(engine.dialect.name, rollup, None)
    ranked = (
        f"SELECT h.key, SUM(h.items) AS n FROM ({statement}) h "
        "GROUP BY h.key ORDER BY n DESC, h.key LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(ranked), params | {"first": first_hour, "limit": limit})
        return [(str(key), int(n)) for key, n in rows]
