"""Scale bench for the store (issue 17): what analysts, the dashboard, `finsent status` and the
alert scan cost on a large history, on PostgreSQL.

Fills a fresh database with N synthetic classified articles spread over D days ending now (a
topic and a sentiment prediction each, 40% with one or two of 500 tickers and a sentiment toward
each ticker's company), with `INSERT ... SELECT generate_series`, then times:

- each analyst query of docs/analyst-sql.md,
- the dashboard's calls (keys, 7-day hourly series for topics and tickers, latest 50),
- `finsent status`'s collection, and one alert scan with the shipped rules;

first as the code reads the store now, then the baseline measured in the same run: the same
queries reading each article's latest prediction by ranking every stored prediction (how the
views and series read before `current_predictions`), by putting ranked views named like the
current tables first on the search path. The baseline gets a statement timeout (default 120 s):
"> 120 s" means it did not finish.

    .venv/bin/python bench/store.py --articles 1000000 --days 30
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, event, text  # noqa: E402

from alerts.rules import Rule, builtin_rules  # noqa: E402
from alerts.scan import scan  # noqa: E402
from alerts.series import read_series  # noqa: E402
from connectors.db import rollup_items, rollups  # noqa: E402
from connectors.db.current import TABLES, fill_sql, ranked_latest_sql  # noqa: E402
from connectors.db.engine import make_engine  # noqa: E402
from connectors.db.migrate import upgrade  # noqa: E402
from connectors.db.partitions import ensure_partitions_on, months_between  # noqa: E402
from connectors.db.views import create_views_sql  # noqa: E402
from pipeline.devstack import postgres as devpg  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.telemetry.status import collect  # noqa: E402
from pipeline.web.dashboard import DashboardData  # noqa: E402

ANALYST_SQL = ROOT / "docs" / "analyst-sql.md"
BASELINE_SCHEMA = "bench_ranked"
TOPICS = 20
TICKERS = 500
MODEL = "bench-v1"
ENTITY_WEEK_PER_ITEM = """
SELECT entity, kind, ticker, COUNT(*) AS mentions,
       SUM(CASE WHEN sentiment = 'negative' THEN 1 ELSE 0 END) AS negative,
       AVG(sentiment_signed) AS mean_sentiment
FROM v_entity_sentiment
WHERE published_at > (SELECT MAX(published_at) FROM articles) - INTERVAL '7 days'
GROUP BY entity, kind, ticker
ORDER BY mentions DESC
LIMIT 50"""


def analyst_queries() -> list[tuple[str, str]]:
    """(first line of the text before it, SQL) for each example of docs/analyst-sql.md."""
    block = "\n" + ANALYST_SQL.read_text().split("<!-- analyst-sql -->")[1]
    # The paragraph before each block names it; its first line, not its last (a two-line
    # paragraph was shown by its tail, "of data, most mentioned first").
    found = re.findall(r"\n\n((?:[^\n`][^\n]*\n)+)\n*```sql\n(.*?)```", block, re.DOTALL)
    return [(title.split("\n")[0].strip().rstrip(":,")[:48], sql.strip()) for title, sql in found]


def fill(engine: Engine, articles: int, days: int, end: datetime) -> dict[str, float]:
    """Raw rows with the triggers off (one bulk load), then the current tables the way migration
    0006 fills them: the bench measures reads, not the loader."""
    span_s = days * 86400
    params = {"n": articles, "span": span_s, "end": end, "model": MODEL}
    # A multiplicative hash spreads publication times, topics and tickers without random():
    # the same N gives the same database on every run.
    statements = [
        """
INSERT INTO articles (id, source, url, title, body, published_at, fetched_at, lang, tickers,
                      ingested_at, kafka_partition, kafka_offset)
SELECT 'b' || g, 'wire-' || (g % 12), NULL, 'Synthetic headline number ' || g, '',
       p, p, 'en', '[]'::json, p + interval '5 seconds', NULL, NULL
FROM (SELECT g, CAST(:end AS timestamptz)
             - ((g::bigint * 2654435761) % :span) * interval '1 second' AS p
      FROM generate_series(1, :n) g) s""",
        """
INSERT INTO article_tickers (article_id, ticker)
SELECT 'b' || g, 'T' || ((g::bigint * 7919) % 500) FROM generate_series(1, :n) g WHERE g % 10 < 4
UNION
SELECT 'b' || g, 'T' || ((g::bigint * 104729 + 13) % 500) FROM generate_series(1, :n) g WHERE g % 10 < 1""",
        """
INSERT INTO predictions (article_id, instruction, label, score, distribution, zero_shot,
                         model_version, created_at, published_at)
SELECT a.id, 'topic', 'topic_' || lpad(((h % 20))::text, 2, '0'), 0.8,
       json_build_object('topic_' || lpad(((h % 20))::text, 2, '0'), 0.8), false, :model,
       a.ingested_at, a.published_at
FROM (SELECT id, ingested_at, published_at, (substr(id, 2)::bigint * 40503) % 1000003 AS h
      FROM articles) a""",
        """
INSERT INTO predictions (article_id, instruction, label, score, distribution, zero_shot,
                         model_version, created_at, published_at)
SELECT a.id, 'sentiment', l.label, 0.7,
       json_build_object('negative', l.neg, 'neutral', l.neu, 'positive', l.pos), false, :model,
       a.ingested_at, a.published_at
FROM (SELECT id, ingested_at, published_at, (substr(id, 2)::bigint * 69069) % 100 AS h
      FROM articles) a
JOIN (VALUES ('negative', 0.7, 0.2, 0.1, 0, 25), ('neutral', 0.15, 0.7, 0.15, 25, 70),
             ('positive', 0.1, 0.2, 0.7, 70, 100)) AS l(label, neg, neu, pos, lo, hi)
  ON a.h >= l.lo AND a.h < l.hi""",
        """
INSERT INTO entity_predictions (article_id, entity, kind, ticker, found, instruction, label,
                                score, distribution, zero_shot, model_version, created_at,
                                published_at)
SELECT k.article_id, 'Company ' || k.ticker, 'company', k.ticker, true, 'sentiment', l.label,
       0.7, json_build_object('negative', l.neg, 'neutral', l.neu, 'positive', l.pos), false,
       :model, a.ingested_at, a.published_at
FROM article_tickers k JOIN articles a ON a.id = k.article_id
JOIN (VALUES ('negative', 0.7, 0.2, 0.1, 0, 30), ('neutral', 0.15, 0.7, 0.15, 30, 65),
             ('positive', 0.1, 0.2, 0.7, 65, 100)) AS l(label, neg, neu, pos, lo, hi)
  ON (hashtext(k.article_id || k.ticker) & 2147483647) % 100 >= l.lo
 AND (hashtext(k.article_id || k.ticker) & 2147483647) % 100 < l.hi""",
    ]
    timings: dict[str, float] = {}
    with engine.begin() as conn:
        # Month partitions for the whole span first: rows of a month without one would land in
        # the default partition (and be moved out by the next housekeeping).
        ensure_partitions_on(conn, end, months=months_between(end - timedelta(days=days), end))
        # The raw tables' triggers (current answers) and the current tables' (dirty hours, each
        # article's rollup rows) are off for the load: each would recompute per article what the
        # bulk statements below compute for all of them in one pass.
        quiet = [table.raw for table in TABLES] + [table.current for table in TABLES] + ["article_tickers"]
        for name in quiet:
            conn.execute(text(f"ALTER TABLE {name} DISABLE TRIGGER USER"))
        started = time.perf_counter()
        for statement in statements:
            conn.execute(text(statement), params)
        timings["raw rows"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in TABLES:
            conn.execute(text(fill_sql(table)))
        timings["current tables"] = time.perf_counter() - started
        started = time.perf_counter()
        for statement in rollup_items.fill_sql("postgresql"):
            conn.execute(text(statement))
        conn.execute(text(rollups.mark_all_sql("postgresql")))
        timings["rollup items"] = time.perf_counter() - started
        for name in quiet:
            conn.execute(text(f"ALTER TABLE {name} ENABLE TRIGGER USER"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        started = time.perf_counter()
        conn.execute(text("VACUUM ANALYZE"))
        timings["vacuum analyze"] = time.perf_counter() - started
    return timings | fold(engine)


def fold(engine: Engine) -> dict[str, float]:
    """Every dirty hour folded (as the rollup job catches up after the migrations), then the
    newest two hours dirty again, as live traffic keeps them between folds."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    hours = rollups.fold_all(engine, max_hours=240)
    timings[f"fold {hours} hours into the rollups"] = time.perf_counter() - started
    # Live traffic keeps the newest hours dirty between folds: the views count them live.
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {rollups.DIRTY} (hour) SELECT MAX(hour) - g "
                "FROM rollup_topic_hourly, generate_series(0, 1) g GROUP BY g"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return timings


def create_baseline(engine: Engine) -> None:
    """Ranked views named like the current tables, and the analyst views over them, in a schema
    that the baseline's connections search first."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {BASELINE_SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {BASELINE_SCHEMA}"))
        conn.execute(text(f"SET LOCAL search_path TO {BASELINE_SCHEMA}, public"))
        for table in TABLES:
            conn.execute(text(f"CREATE VIEW {table.current} AS {ranked_latest_sql(table)}"))
        for statement in create_views_sql("postgresql", current=False):
            conn.execute(text(statement))


def baseline_engine(url: str, timeout_s: int) -> Engine:
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {BASELINE_SCHEMA}, public")
            cursor.execute(f"SET statement_timeout = '{timeout_s}s'")
            # As before migration 0007 switched JIT off for the database.
            cursor.execute("SET jit = on")
        dbapi_connection.commit()

    return engine


def timed(call: Callable[[], object], repeat: int) -> float | None:
    """Best of `repeat` wall times in seconds (the first run also warms the cache); None when
    the statement timeout stopped it."""
    best: float | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            call()
        except Exception as error:
            if "statement timeout" in str(error) or "canceling statement" in str(error):
                return None
            raise
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best


def workloads(engine: Engine, settings: Settings, now: datetime) -> list[tuple[str, Callable[[], object]]]:
    def query(sql: str) -> Callable[[], object]:
        def run() -> object:
            with engine.connect() as conn:
                return conn.execute(text(sql)).all()

        return run

    dashboard = DashboardData(engine)
    week = 7 * 86400.0
    rules = builtin_rules()
    items: list[tuple[str, Callable[[], object]]] = [
        (f"README: {title}", query(sql)) for title, sql in analyst_queries()
    ]
    # The same question as the README's, as it read every entity answer of the week before the
    # entity rollup (migration 0010): before and after in one run.
    items.append(("entities of the last week, per-item view (before 0010)", query(ENTITY_WEEK_PER_ITEM)))
    items += [
        ("dashboard: topic keys, 7 days", lambda: dashboard.keys("topic", week)),
        ("dashboard: ticker keys, 7 days", lambda: dashboard.keys("ticker", week)),
        ("dashboard: topic series, 7 days hourly", lambda: dashboard.series("topic", "", 3600, week)),
        ("dashboard: ticker series, 7 days hourly", lambda: dashboard.series("ticker", "T7", 3600, week)),
        ("dashboard: latest 50 items", lambda: dashboard.latest(50)),
        ("finsent status", lambda: collect(settings, engine)),
        ("one alert scan, shipped rules", lambda: scan(engine, rules, [], now)),
        # The scan's series read both ways in the same run: summed from the minute rollup (the
        # scan's way) and counted from every item of each window (before the rollup existed).
        ("alert series of the shipped rules, minute rollup", lambda: _series(engine, rules, now, True)),
        ("alert series of the shipped rules, counted live", lambda: _series(engine, rules, now, False)),
    ]
    return items


def _series(engine: Engine, rules: list[Rule], now: datetime, rollup: bool) -> list[object]:
    return [read_series(engine, rule.series_query(), now, MODEL, rollup=rollup) for rule in rules]


def storage(engine: Engine) -> list[tuple[str, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                # A partition counts under its partitioned table.
                "SELECT COALESCE(pg_partition_root(c.oid), c.oid)::regclass::text AS name, "
                "SUM(c.reltuples)::bigint, SUM(pg_total_relation_size(c.oid)) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' GROUP BY 1 ORDER BY 3 DESC"
            )
        ).all()
    return [(str(name), int(n), int(size)) for name, n, size in rows]


def show(seconds: float | None, timeout_s: int) -> str:
    if seconds is None:
        return f"> {timeout_s} s"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--port", type=int, default=55432, help="the dev PostgreSQL's port")
    parser.add_argument("--database", default="finsent_bench")
    parser.add_argument("--baseline-timeout", type=int, default=120, help="seconds per baseline statement")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kafka", default="127.0.0.1:19092", help="broker `finsent status` asks for lag")
    parser.add_argument("--keep", action="store_true", help="leave the database for EXPLAIN")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time a database an earlier --keep run filled (migrated to the current schema and "
        "folded first) instead of filling a new one: the 10 M fill takes half an hour",
    )
    args = parser.parse_args()

    config = devpg.PostgresConfig(
        data_dir=devpg.default_data_dir(ROOT / ".finsent-test", args.port), port=args.port
    )
    devpg.start(config)
    if not args.reuse:
        devpg.drop_database(config, args.database)
    url = devpg.create_database(config, args.database)
    upgrade(url)
    engine = make_engine(url)
    # The dev broker when it runs: `finsent status` asks Kafka for the lag too, and against no
    # broker it would time the 5 s connection timeout instead of the database.
    settings = Settings(database_url=url, kafka_bootstrap=args.kafka)
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.connect() as conn:
        stored = int(conn.execute(text("SELECT COUNT(*) FROM articles")).scalar_one())
        latest = conn.execute(text("SELECT MAX(published_at) FROM articles")).scalar_one()
    reusing = args.reuse and latest is not None
    if reusing:
        args.articles = stored
        now = latest.replace(microsecond=0)  # the windows end where the filled history ends

    print(f"# store bench: {args.articles:,} articles over {args.days} days, PostgreSQL")
    steps = fold(engine) if reusing else fill(engine, args.articles, args.days, now)
    for step, seconds in steps.items():
        print(f"fill: {step}: {seconds:.1f} s")
    total = 0
    for name, rows, size in storage(engine):
        total += size
        if size > 1 << 20:
            print(f"storage: {name}: {rows:,} rows, {size / 2**20:.0f} MiB")
    per_million = total / 2**20 / (args.articles / 1e6)
    print(f"storage: total {total / 2**20:.0f} MiB = {per_million:.0f} MiB per million articles")

    current = {name: timed(call, args.repeat) for name, call in workloads(engine, settings, now)}
    ranked: dict[str, float | None] = {}
    if not args.no_baseline:
        create_baseline(engine)
        base = baseline_engine(url, args.baseline_timeout)
        ranked = {name: timed(call, 1) for name, call in workloads(base, settings, now)}
        base.dispose()
    print()
    print("| workload | ranked every prediction (before) | current tables (now) | ratio |")
    print("| --- | --- | --- | --- |")
    for name, seconds in current.items():
        before = ranked.get(name)
        ratio = f"{before / seconds:.0f}x" if before is not None and seconds else "-"
        if name in ranked and before is None:
            ratio = f"> {args.baseline_timeout / seconds:.0f}x" if seconds else "-"
        before_text = show(before, args.baseline_timeout) if name in ranked else "not run"
        print(f"| {name} | {before_text} | {show(seconds, args.baseline_timeout)} | {ratio} |")
    engine.dispose()
    if not args.keep:
        devpg.drop_database(config, args.database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
