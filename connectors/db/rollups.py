"""Hourly rollups behind the analyst series views, exact by recounting what changed.

`v_topic_sentiment_*`, `v_ticker_sentiment_*` and `v_entity_sentiment_hourly|daily` aggregate
every article ever classified; at a month of one newswire that is a few seconds per query and
grows with history. They read instead `rollup_topic_hourly`, `rollup_ticker_hourly` and
`rollup_entity_hourly` (per UTC hour of publication and key: items, negative, neutral, positive,
rated, signed-sentiment sum; an entity's key is its name, kind and ticker).

Exactness without delta arithmetic: triggers on everything a series reads (the current answers,
the article-ticker links, an article's deletion or new publication time) put the touched hours
into `rollup_dirty_hours`, in the writer's own transaction. A dirty hour's rollup rows are never
read: the views take stored rows for clean hours and count dirty hours live from the current
tables, so a view is exact the moment the writer commits, whether or not a fold has run.
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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from connectors.db import scan_rollup
from connectors.db.sql_expressions import epoch_slot, int_list_param, signed_sentiment

DIRTY = "rollup_dirty_hours"


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
# Above this many hours in one fold, recount by joining (see _counted_rows).
BULK_HOURS = 24
COUNTS = ("items", "negative", "neutral", "positive", "rated", "signed_sum")


def hour_of(dialect: str, column: str) -> str:
    """The UTC hour a timestamp falls in, as an integer."""
    return epoch_slot(dialect, column, 3600)


def hour_start(dialect: str, hour: str) -> str:
    """An hour's first instant, comparable with stored timestamps (index range scans)."""
    if dialect == "postgresql":
        return f"to_timestamp(({hour}) * 3600)"
    return f"strftime('%Y-%m-%d %H:%M:%S', ({hour}) * 3600, 'unixepoch')"


def bucket_of_hour(dialect: str, hour: str, grain: str) -> str:
    """The bucket the views always showed (timestamp without zone, UTC) for an hour number."""
    if dialect == "postgresql":
        instant = f"(to_timestamp(({hour}) * 3600) AT TIME ZONE 'UTC')"
        return instant if grain == "hour" else f"date_trunc('day', {instant})"
    fmt = "%Y-%m-%d %H:00:00" if grain == "hour" else "%Y-%m-%d 00:00:00"
    return f"strftime('{fmt}', ({hour}) * 3600, 'unixepoch')"


def _counted_rows(dialect: str, rollup: Rollup, hours: str, bulk: bool = False) -> str:
    """One row per counted item of the given hours: (published_at, key, sentiment, signed), the
    meaning of v_articles_classified / v_ticker_sentiment_items. Answers are looked up per article
    by correlated subqueries on the current tables' keys: joined instead, PostgreSQL misjudged an
    hour's articles at a ninth of the table and hashed every current answer (0.6 s for 2 hours
    of 1 M articles). For many hours at once (`bulk`: a fold catching up after the migration or a
    backfill) that hash join is the cheaper plan: 19 s instead of 150 s to fold 721 hours of 1 M
    articles."""
    if bulk:
        source = {TOPIC: "v_articles_classified", TICKER: "v_ticker_sentiment_items"}.get(
            rollup, "v_entity_sentiment"
        )
        extra = "".join(f", COALESCE(c.{k}, '') AS {k}" for k in rollup.extra_keys)
        # The hours' overall span bounds the articles by the published_at index, and each
        # article's own hour is matched by equality (a hashed semi-join). Joined on each hour's
        # range instead, PostgreSQL classified every article of the table and tested it against
        # every hour: 100 s per 48 hours at 10 M articles.
        return f"""
SELECT c.published_at, c.{rollup.dimension} AS key{extra}, c.sentiment, c.sentiment_signed
FROM {source} c
WHERE c.published_at >= (SELECT {hour_start(dialect, "MIN(s.hour)")} FROM ({hours}) s)
  AND c.published_at < (SELECT {hour_start(dialect, "MAX(s.hour) + 1")} FROM ({hours}) s)
  AND {hour_of(dialect, "c.published_at")} IN (SELECT s.hour FROM ({hours}) s)"""
    if dialect == "postgresql":
        # LATERAL: a correlated lookup PostgreSQL cannot turn into a hash join over the whole
        # table, which its estimate of an hour's articles (a ninth of the table) made it choose.
        # OFFSET 0 keeps each LATERAL a subquery: flattened into the outer join, a view's filter
        # (the entity view's `bucket > ...`) was pushed onto every article and the entity answers
        # hashed whole: 9.6 s to count 2 live hours of 10 M articles.
        articles = f"""
FROM ({hours}) d
CROSS JOIN LATERAL (
    SELECT a.id, a.published_at FROM articles a
    WHERE a.published_at >= {hour_start(dialect, "d.hour")}
      AND a.published_at < {hour_start(dialect, "d.hour + 1")}
    OFFSET 0
) a"""
        tickers = (
            "CROSS JOIN LATERAL (SELECT k.ticker FROM article_tickers k WHERE k.article_id = a.id OFFSET 0) k"
        )
        entities = (
            "CROSS JOIN LATERAL (SELECT e.entity, e.kind, e.ticker, e.label, e.distribution "
            "FROM current_entity_predictions e WHERE e.article_id = a.id AND e.instruction = 'sentiment' "
            "OFFSET 0) e"
        )
    else:
        articles = f"""
FROM ({hours}) d
JOIN articles a
  ON a.published_at >= {hour_start(dialect, "d.hour")}
 AND a.published_at < {hour_start(dialect, "d.hour + 1")}"""
        tickers = "JOIN article_tickers k ON k.article_id = a.id"
        entities = "JOIN current_entity_predictions e ON e.article_id = a.id AND e.instruction = 'sentiment'"

    if rollup is ENTITY:
        # What v_entity_sentiment shows: each entity's own answer, never the article's.
        return (
            f"SELECT a.published_at, e.entity AS key, e.kind, COALESCE(e.ticker, '') AS ticker, "
            f"e.label AS sentiment, {signed_sentiment(dialect, 'e.distribution')} AS sentiment_signed"
            f"{articles}\n{entities}"
        )
    if dialect == "postgresql":
        return _counted_rows_postgresql(rollup, articles, tickers)

    def answer(column: str, instruction: str) -> str:
        return (
            f"(SELECT {column} FROM current_predictions p "
            f"WHERE p.article_id = a.id AND p.instruction = '{instruction}')"
        )

    sentiment = answer("p.label", "sentiment")
    signed = answer(signed_sentiment(dialect, "p.distribution"), "sentiment")
    if rollup is TOPIC:
        topic = answer("p.label", "topic")
        answers = f"{topic} AS key, {sentiment} AS sentiment, {signed} AS sentiment_signed"
        return f"SELECT a.published_at, {answers}{articles}"

    def toward(column: str) -> str:
        # The first entity by name answers for a ticker several entities share.
        return (
            f"(SELECT {column} FROM current_entity_predictions e WHERE e.article_id = a.id "
            "AND e.ticker = k.ticker AND e.instruction = 'sentiment' ORDER BY e.entity LIMIT 1)"
        )

    return (
        f"SELECT a.published_at, k.ticker AS key, "
        f"COALESCE({toward('e.label')}, {sentiment}) AS sentiment, "
        f"COALESCE({toward(signed_sentiment(dialect, 'e.distribution'))}, {signed}) AS sentiment_signed"
        f"{articles}\n{tickers}"
    )


def _counted_rows_postgresql(rollup: Rollup, articles: str, tickers: str) -> str:
    """The topic and ticker rows of _counted_rows on PostgreSQL: each article's answers read by
    one probe of current_predictions' key. As scalar subqueries in the select list, PostgreSQL
    planned each *reference* as its own subplan (the sentiment five times: three CASEs, a COUNT,
    a SUM), 7 index probes per article: 1.0 s to count 2 live hours of 21,000 articles, where
    one probe each takes 0.45 s."""
    signed = signed_sentiment("postgresql", "p.distribution")
    # One row per article even without answers (an aggregate without GROUP BY): an article not
    # classified yet counts under no topic, and under its tickers unrated, as the views show it.
    answers = f"""
CROSS JOIN LATERAL (
    SELECT MAX(p.label) FILTER (WHERE p.instruction = 'topic') AS topic,
           MAX(p.label) FILTER (WHERE p.instruction = 'sentiment') AS sentiment,
           MAX({signed}) FILTER (WHERE p.instruction = 'sentiment') AS sentiment_signed
    FROM current_predictions p WHERE p.article_id = a.id AND p.instruction IN ('topic', 'sentiment')
    OFFSET 0
) p"""
    if rollup is TOPIC:
        return f"SELECT a.published_at, p.topic AS key, p.sentiment, p.sentiment_signed{articles}{answers}"
    # The first entity by name answers for a ticker several entities share.
    toward = f"""
LEFT JOIN LATERAL (
    SELECT e.label, {signed_sentiment("postgresql", "e.distribution")} AS signed
    FROM current_entity_predictions e
    WHERE e.article_id = a.id AND e.ticker = k.ticker AND e.instruction = 'sentiment'
    ORDER BY e.entity LIMIT 1
) e ON TRUE"""
    return (
        "SELECT a.published_at, k.ticker AS key, COALESCE(e.label, p.sentiment) AS sentiment, "
        f"COALESCE(e.signed, p.sentiment_signed) AS sentiment_signed{articles}\n{tickers}{answers}{toward}"
    )


def live_counts_sql(dialect: str, rollup: Rollup, hours: str, bulk: bool = False) -> str:
    """Counts per (hour, key) recounted from the current answers for the hours that `hours` (a
    SELECT of one `hour` column) yields; the range join on publication time reads only those
    hours' articles through the published_at index. Columns: hour, key, the extra keys, COUNTS."""
    extra = "".join(f", c.{k}" for k in rollup.extra_keys)
    # signed_sum CAST: on SQLite a sum of answers without a positive or negative probability is
    # the integer 0, which a recount compared with the stored 0.0 called a difference.
    return f"""
SELECT {hour_of(dialect, "c.published_at")} AS hour, c.key{extra},
       COUNT(*) AS items,
       SUM(CASE WHEN c.sentiment = 'negative' THEN 1 ELSE 0 END) AS negative,
       SUM(CASE WHEN c.sentiment = 'neutral' THEN 1 ELSE 0 END) AS neutral,
       SUM(CASE WHEN c.sentiment = 'positive' THEN 1 ELSE 0 END) AS positive,
       COUNT(c.sentiment) AS rated,
       CAST(COALESCE(SUM(c.sentiment_signed), 0.0) AS FLOAT) AS signed_sum
FROM ({_counted_rows(dialect, rollup, hours, bulk)}) c
WHERE c.key IS NOT NULL
GROUP BY {hour_of(dialect, "c.published_at")}, c.key{extra}"""


def series_view_sql(dialect: str, rollup: Rollup, grain: str) -> str:
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
    live = live_counts_sql(dialect, rollup, f"SELECT hour FROM {DIRTY}")
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
        name = _trigger_name(table, event)
        statements.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    {body}\n    RETURN NULL;\nEND $$"
        )
        statements.append(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transitions} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )

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
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name in _trigger_names()] + [
            f"DROP FUNCTION IF EXISTS {name}()" for _, name in _trigger_names()
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for _, name in _trigger_names()]


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


def read_hours(
    engine: Engine, rollup: Rollup, first_hour: int, key: str | None = None
) -> list[tuple[Any, ...]]:
    """(hour, key, items, negative, neutral, positive, rated, signed_sum) for every hour from
    `first_hour` on (one key, or all): stored rows of clean hours by the primary key's range,
    dirty hours counted live. What a chart of hourly buckets reads, whatever the history's size."""
    if rollup.extra_keys:
        raise ValueError(f"{rollup.table}: read_hours reads rollups keyed by one column")
    dialect = engine.dialect.name
    only_key = f" AND r.{rollup.dimension} = :key" if key is not None else ""
    stored = (
        f"SELECT r.hour, r.{rollup.dimension}, {', '.join(f'r.{c}' for c in COUNTS)} FROM {rollup.table} r "
        f"WHERE r.hour >= :first{only_key} AND NOT EXISTS (SELECT 1 FROM {DIRTY} d WHERE d.hour = r.hour)"
    )
    live = live_counts_sql(dialect, rollup, f"SELECT hour FROM {DIRTY} WHERE hour >= :first")
    live_key = " WHERE x.key = :key" if key is not None else ""
    counted = ", ".join(f"x.{c}" for c in COUNTS)
    statement = f"{stored} UNION ALL SELECT x.hour, x.key, {counted} FROM ({live}) x{live_key}"
    params: dict[str, Any] = {"first": first_hour}
    if key is not None:
        params["key"] = key
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(statement), params)]
