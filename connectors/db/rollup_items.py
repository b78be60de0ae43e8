"""Each article's rows as the series count them, kept by the database in the writer's transaction.

An hour not folded yet is counted live (connectors/db/rollups.py). Counted from the current
answers, that meant finding the hour's articles by publication time and looking up each one's
topic, sentiment, tickers and entity answers by key: a few index probes per article, about
0.3 s per hour at 10,000 articles an hour (a month of 10 M articles), so every series view and
dashboard call with the newest two hours live cost 0.5-1.9 s. `rollup_items` holds what those
lookups produce, one row per article and dimension key (its topic; each of its tickers with the
sentiment toward it; each entity it names with the entity's own sentiment), with the hour of
publication, indexed by (dimension, hour): counting a live hour is one index range scan. The
alert scan sums its live hours from here too (by the exact publication time, indexed by
(dimension, published_at), with the model versions it judges a point by: migration 0012).

The rows are a function of the current tables, recomputed for the articles a statement touched
(never adjusted by arithmetic, so a redelivery, a model swap or a backfill cannot make them
drift): triggers on `current_predictions` (topic and ticker rows: a ticker without an entity
answer takes the article's sentiment), `current_entity_predictions` (entity and ticker rows),
`article_tickers` (ticker rows) and a change of an article's publication time (all of them)
delete the articles' rows of those dimensions and insert them again from the current answers.
An article deleted takes its rows with it by cascade; the recomputation triggered by its answers'
cascade reads the article row, already gone, and inserts nothing.

Concurrency (PostgreSQL): two transactions writing answers of the same article serialise on the
current tables' rows (the current-table triggers upsert them in key order), so the second
recomputes after the first committed and sees its answers. The INSERT still replaces a row on
conflict rather than failing the writer's batch, should two writers ever interleave otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from connectors.db import triggers
from connectors.db.rollup_keys import ENTITY, ITEMS, ROLLUPS, TICKER, TOPIC, Rollup, hour_of
from connectors.db.sql_expressions import signed_sentiment
from connectors.db.triggers import statement_trigger_sql

# Migration 0011's columns, then 0012's: the exact publication time and the model versions the
# alert scan judges a point by (the article's sentiment answer; a topic row's topic answer), so
# that the scan sums an hour not folded yet from here too (alerts/series.py).
BASE_COLUMNS = (
    "article_id",
    "dimension",
    "series_key",
    "kind",
    "ticker",
    "hour",
    "sentiment",
    "sentiment_signed",
)
SCAN_COLUMNS = ("published_at", "sentiment_version", "key_version")
COLUMNS = BASE_COLUMNS + SCAN_COLUMNS


def columns(scan: bool = True) -> tuple[str, ...]:
    """The table's columns at migration 0012 (`scan`) or 0011."""
    return COLUMNS if scan else BASE_COLUMNS


# A version no answer gave (a ticker row has no key answer): typed, so that the rows of
# several dimensions UNION on PostgreSQL.
_NO_VERSION = "CAST(NULL AS VARCHAR(100))"

# What each current table's change can alter (the sources of each dimension's rows).
_SOURCES: tuple[tuple[str, tuple[Rollup, ...], tuple[str, ...]], ...] = (
    ("current_predictions", (TOPIC, TICKER), ("INSERT", "UPDATE", "DELETE")),
    ("current_entity_predictions", (ENTITY, TICKER), ("INSERT", "UPDATE", "DELETE")),
    ("article_tickers", (TICKER,), ("INSERT", "DELETE")),
)


def counted_rows_sql(dialect: str, rollup: Rollup, articles: str) -> str:
    """One row per counted item of the articles `articles` yields (a FROM clause binding `a` with
    `a.id` and `a.published_at`): (article_id, published_at, key, extra keys, sentiment,
    sentiment_signed, sentiment_version, key_version), the meaning of v_articles_classified /
    v_ticker_sentiment_items / v_entity_sentiment; the versions are the article's sentiment
    answer's and (topic rows) the topic answer's, an entity row's own answer's. Answers are
    looked up per article by key: joined instead, PostgreSQL misjudged a set of articles at a
    ninth of the table and hashed every current answer."""
    if rollup is ENTITY:
        if dialect == "postgresql":
            # OFFSET 0 keeps each LATERAL a subquery: flattened into the outer join, an outer
            # filter was pushed onto every article and the entity answers hashed whole.
            entities = (
                "CROSS JOIN LATERAL (SELECT e.entity, e.kind, e.ticker, e.label, e.distribution, "
                "e.model_version FROM current_entity_predictions e WHERE e.article_id = a.id "
                "AND e.instruction = 'sentiment' OFFSET 0) e"
            )
        else:
            entities = (
                "JOIN current_entity_predictions e ON e.article_id = a.id AND e.instruction = 'sentiment'"
            )
        # What v_entity_sentiment shows: each entity's own answer, never the article's.
        return (
            "SELECT a.id AS article_id, a.published_at, e.entity AS key, e.kind, "
            "COALESCE(e.ticker, '') AS ticker, e.label AS sentiment, "
            f"{signed_sentiment(dialect, 'e.distribution')} AS sentiment_signed, "
            f"e.model_version AS sentiment_version, {_NO_VERSION} AS key_version\n{articles}\n{entities}"
        )
    if dialect == "postgresql":
        return _counted_rows_postgresql(rollup, articles)

    def answer(column: str, instruction: str) -> str:
        return (
            f"(SELECT {column} FROM current_predictions p "
            f"WHERE p.article_id = a.id AND p.instruction = '{instruction}')"
        )

    sentiment = answer("p.label", "sentiment")
    signed = answer(signed_sentiment(dialect, "p.distribution"), "sentiment")
    sentiment_version = answer("p.model_version", "sentiment")
    if rollup is TOPIC:
        topic = answer("p.label", "topic")
        answers = (
            f"{topic} AS key, {sentiment} AS sentiment, {signed} AS sentiment_signed, "
            f"{sentiment_version} AS sentiment_version, {answer('p.model_version', 'topic')} AS key_version"
        )
        return f"SELECT a.id AS article_id, a.published_at, {answers}\n{articles}"

    def toward(column: str) -> str:
        # The first entity by name answers for a ticker several entities share.
        return (
            f"(SELECT {column} FROM current_entity_predictions e WHERE e.article_id = a.id "
            "AND e.ticker = k.ticker AND e.instruction = 'sentiment' ORDER BY e.entity LIMIT 1)"
        )

    return (
        "SELECT a.id AS article_id, a.published_at, k.ticker AS key, "
        f"COALESCE({toward('e.label')}, {sentiment}) AS sentiment, "
        f"COALESCE({toward(signed_sentiment(dialect, 'e.distribution'))}, {signed}) AS sentiment_signed, "
        f"{sentiment_version} AS sentiment_version, {_NO_VERSION} AS key_version"
        f"\n{articles}\nJOIN article_tickers k ON k.article_id = a.id"
    )


def _counted_rows_postgresql(rollup: Rollup, articles: str) -> str:
    """The topic and ticker rows of counted_rows_sql on PostgreSQL: each article's answers read by
    one probe of current_predictions' key. As scalar subqueries in the select list, PostgreSQL
    planned each *reference* as its own subplan (the sentiment five times), 7 index probes per
    article: 1.25-1.47 s to count 2 hours of 21,000 articles, where one probe each takes 0.65 s."""
    signed = signed_sentiment("postgresql", "p.distribution")
    # One row per article even without answers (an aggregate without GROUP BY): an article not
    # classified yet counts under no topic, and under its tickers unrated, as the views show it.
    answers = f"""
CROSS JOIN LATERAL (
    SELECT MAX(p.label) FILTER (WHERE p.instruction = 'topic') AS topic,
           MAX(p.label) FILTER (WHERE p.instruction = 'sentiment') AS sentiment,
           MAX({signed}) FILTER (WHERE p.instruction = 'sentiment') AS sentiment_signed,
           MAX(p.model_version) FILTER (WHERE p.instruction = 'topic') AS topic_version,
           MAX(p.model_version) FILTER (WHERE p.instruction = 'sentiment') AS sentiment_version
    FROM current_predictions p WHERE p.article_id = a.id AND p.instruction IN ('topic', 'sentiment')
    OFFSET 0
) p"""
    if rollup is TOPIC:
        return (
            "SELECT a.id AS article_id, a.published_at, p.topic AS key, p.sentiment, "
            f"p.sentiment_signed, p.sentiment_version, p.topic_version AS key_version\n{articles}{answers}"
        )
    tickers = (
        "CROSS JOIN LATERAL (SELECT k.ticker FROM article_tickers k WHERE k.article_id = a.id OFFSET 0) k"
    )
    # The first entity by name answers for a ticker several entities share.
    toward = f"""
LEFT JOIN LATERAL (
    SELECT e.label, {signed_sentiment("postgresql", "e.distribution")} AS signed
    FROM current_entity_predictions e
    WHERE e.article_id = a.id AND e.ticker = k.ticker AND e.instruction = 'sentiment'
    ORDER BY e.entity LIMIT 1
) e ON TRUE"""
    # Tickers before answers: only articles with a ticker are looked up.
    return (
        "SELECT a.id AS article_id, a.published_at, k.ticker AS key, "
        "COALESCE(e.label, p.sentiment) AS sentiment, "
        "COALESCE(e.signed, p.sentiment_signed) AS sentiment_signed, p.sentiment_version, "
        f"{_NO_VERSION} AS key_version\n{articles}\n{tickers}{answers}{toward}"
    )


def bulk_counted_rows_sql(rollup: Rollup) -> str:
    """The same rows read from the per-item views, for many articles at once (filling the table,
    the tests' recount): hash joins over whole tables, the cheaper plan when most articles are
    read, and a definition independent of the probes above."""
    extra = "".join(f", COALESCE(c.{k}, '') AS {k}" for k in rollup.extra_keys)
    if rollup is TOPIC:
        # v_articles_classified's model_version is its sentiment's; the topic's is looked up.
        source = (
            "v_articles_classified c LEFT JOIN current_predictions v "
            "ON v.article_id = c.article_id AND v.instruction = 'topic'"
        )
        versions = "c.model_version AS sentiment_version, v.model_version AS key_version"
    elif rollup is TICKER:
        # v_ticker_sentiment_items's model_version is the entity answer's where one answered;
        # the scan judges a ticker's point by the article's sentiment answer.
        source = (
            "v_ticker_sentiment_items c LEFT JOIN current_predictions v "
            "ON v.article_id = c.article_id AND v.instruction = 'sentiment'"
        )
        versions = f"v.model_version AS sentiment_version, {_NO_VERSION} AS key_version"
    else:
        source = "v_entity_sentiment c"
        versions = f"c.model_version AS sentiment_version, {_NO_VERSION} AS key_version"
    return (
        f"SELECT c.article_id, c.published_at, c.{rollup.dimension} AS key{extra}, c.sentiment, "
        f"c.sentiment_signed, {versions} FROM {source}"
    )


def _kind_and_ticker(rollup: Rollup) -> tuple[str, str]:
    """An entity row's kind and ticker; '' for the dimensions keyed by their key alone."""
    kind = "c.kind" if "kind" in rollup.extra_keys else "''"
    ticker = "c.ticker" if "ticker" in rollup.extra_keys else "''"
    return kind, ticker


def _item_rows_sql(dialect: str, rollup: Rollup, rows: str, scan: bool = True) -> str:
    """The `rollup_items` rows (columns(scan), in order) of one rollup's counted rows (a SELECT)."""
    kind, ticker = _kind_and_ticker(rollup)
    scan_values = ", c.published_at, c.sentiment_version, c.key_version" if scan else ""
    return (
        f"SELECT c.article_id, '{rollup.dimension}' AS dimension, c.key AS series_key, "
        f"{kind} AS kind, {ticker} AS ticker, {hour_of(dialect, 'c.published_at')} AS hour, "
        f"c.sentiment, CAST(c.sentiment_signed AS FLOAT) AS sentiment_signed{scan_values} "
        f"FROM ({rows}) c WHERE c.key IS NOT NULL"
    )


def _insert_sql(
    dialect: str, parts: Sequence[tuple[Rollup, str]], scan: bool = True, by_hour: bool = False
) -> str:
    """One INSERT of the counted rows of each (rollup, rows SELECT) part; `by_hour`: written in
    order of hour (see fill_sql)."""
    selects = " UNION ALL ".join(_item_rows_sql(dialect, rollup, rows, scan) for rollup, rows in parts)
    if by_hour:
        selects += " ORDER BY hour"
    # Replace on conflict (PostgreSQL): see the module's note on concurrency. SQLite has one
    # writer, and its row triggers delete before they insert.
    updated = [c for c in columns(scan) if c not in ("article_id", "dimension", "series_key")]
    conflict = (
        " ON CONFLICT (article_id, dimension, series_key) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in updated)
        if dialect == "postgresql"
        else ""
    )
    return f"INSERT INTO {ITEMS} ({', '.join(columns(scan))}) {selects}{conflict}"


def fill_sql(dialect: str, scan: bool = True) -> list[str]:
    """Every article's rows, from the views in one pass per dimension: how the migrations fill the
    table for the history stored before them (and the bench for its synthetic one). `scan`
    False: the columns of migration 0011, which runs before 0012 adds the others."""
    # TRUNCATE on PostgreSQL: a DELETE of every row left the table twice its size until a
    # VACUUM FULL (622 MiB for 2 M rows after migration 0012 refilled it at the dense bench).
    emptied = f"TRUNCATE {ITEMS}" if dialect == "postgresql" else f"DELETE FROM {ITEMS}"
    # In order of hour, as live traffic appends them: every reader reads one dimension's rows of
    # an hour or a time range. Written in the views' order (by article), the 10 M bench's two
    # live hours of topic rows (25,252) lay on 24,976 heap pages: 250-320 ms of the README's
    # topics query. In hour order they lie on 378 pages and the query takes 26-63 ms.
    return [emptied] + [
        _insert_sql(dialect, [(rollup, bulk_counted_rows_sql(rollup))], scan, by_hour=True)
        for rollup in ROLLUPS
    ]


def recount_sql(dialect: str) -> str:
    """What the table must hold, recounted from the views (the tests compare the two)."""
    return " UNION ALL ".join(
        _item_rows_sql(dialect, rollup, bulk_counted_rows_sql(rollup)) for rollup in ROLLUPS
    )


def _refresh_postgresql(rollups_: Iterable[Rollup], ids: str, scan: bool) -> str:
    """Delete and recompute the rows of `rollups_` for the articles `ids` (a SELECT of
    article_id) yields: one DELETE and one INSERT whatever the dimensions, and nothing at all for
    a statement without rows (an upsert fires its UPDATE trigger with empty transition tables)."""
    rollups_ = tuple(rollups_)
    articles = f"""FROM (SELECT DISTINCT article_id FROM ({ids}) i) d
CROSS JOIN LATERAL (SELECT a.id, a.published_at FROM articles a WHERE a.id = d.article_id OFFSET 0) a"""
    dimensions = ", ".join(f"'{rollup.dimension}'" for rollup in rollups_)
    parts = [(rollup, counted_rows_sql("postgresql", rollup, articles)) for rollup in rollups_]
    return (
        f"IF EXISTS ({ids}) THEN\n"
        f"        DELETE FROM {ITEMS} WHERE dimension IN ({dimensions}) AND article_id IN ({ids});\n"
        f"        {_insert_sql('postgresql', parts, scan)};\n"
        "    END IF;"
    )


def _trigger_name(table: str, event: str) -> str:
    return f"trg_{table}_items_{event.lower()}"


def _postgresql_triggers(scan: bool) -> list[str]:
    statements: list[str] = []

    def add(table: str, event: str, body: str, transitions: str) -> None:
        statements.extend(statement_trigger_sql(_trigger_name(table, event), table, event, body, transitions))

    for table, affected, events in _SOURCES:
        for event in events:
            if event == "DELETE":
                rows, transitions = "SELECT article_id FROM old_rows", "OLD TABLE AS old_rows"
            elif event == "INSERT":
                rows, transitions = "SELECT article_id FROM new_rows", "NEW TABLE AS new_rows"
            else:
                rows = "SELECT article_id FROM old_rows UNION SELECT article_id FROM new_rows"
                transitions = "OLD TABLE AS old_rows NEW TABLE AS new_rows"
            add(table, event, _refresh_postgresql(affected, rows, scan), transitions)
    # Only articles whose publication time changed: the body retention's UPDATE must not
    # recompute every article it empties.
    moved = (
        "SELECT n.id AS article_id FROM old_rows o JOIN new_rows n ON n.id = o.id "
        "WHERE o.published_at IS DISTINCT FROM n.published_at"
    )
    both = "OLD TABLE AS old_rows NEW TABLE AS new_rows"
    add("articles", "UPDATE", _refresh_postgresql(ROLLUPS, moved, scan), both)
    return statements


def _sqlite_refresh(rollups_: Iterable[Rollup], article_id: str, scan: bool) -> str:
    """Delete and recompute the rows of `rollups_` for the article `article_id` (OLD.article_id,
    NEW.id...) names: a row trigger's whole work."""
    # A derived table, so that the joins counted_rows_sql appends read one article's answers.
    articles = f"FROM (SELECT id, published_at FROM articles WHERE id = {article_id}) a"
    statements = []
    for rollup in rollups_:
        statements.append(
            f"    DELETE FROM {ITEMS} WHERE dimension = '{rollup.dimension}' AND article_id = {article_id};"
        )
        rows = counted_rows_sql("sqlite", rollup, articles)
        statements.append(f"    {_insert_sql('sqlite', [(rollup, rows)], scan)};")
    return "\n".join(statements)


def _sqlite_triggers(scan: bool) -> list[str]:
    statements: list[str] = []
    for table, affected, events in _SOURCES:
        for event in events:
            rows = ["OLD"] if event == "DELETE" else ["NEW"] if event == "INSERT" else ["OLD", "NEW"]
            body = "\n".join(_sqlite_refresh(affected, f"{row}.article_id", scan) for row in rows)
            statements.append(
                f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} BEGIN\n{body}\nEND"
            )
    statements.append(
        f"CREATE TRIGGER {_trigger_name('articles', 'UPDATE')} AFTER UPDATE OF published_at ON articles "
        f"BEGIN\n{_sqlite_refresh(ROLLUPS, 'NEW.id', scan)}\nEND"
    )
    return statements


def create_triggers_sql(dialect: str, scan: bool = True) -> list[str]:
    """The triggers that keep the table; `scan` False: those of migration 0011's columns."""
    if dialect == "postgresql":
        return _postgresql_triggers(scan)
    if dialect == "sqlite":
        return _sqlite_triggers(scan)
    raise RuntimeError(f"unsupported database dialect {dialect!r}: use PostgreSQL or SQLite")


def trigger_names() -> list[tuple[str, str]]:
    names = [(table, _trigger_name(table, event)) for table, _, events in _SOURCES for event in events]
    return [*names, ("articles", _trigger_name("articles", "UPDATE"))]


def drop_triggers_sql(dialect: str) -> list[str]:
    return triggers.drop_triggers_sql(dialect, trigger_names())
