"""`finsent worker | ingest | db | dlq`: run the stream, feed it, migrate the store, replay dead letters."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, tzinfo
from pathlib import Path

from pipeline.cli.common import Register, Subparsers
from pipeline.settings import Settings
from pipeline.telemetry import metrics


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.service.worker import run_worker

    run_worker(settings)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.db.migrate import upgrade

    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def cmd_db_stats(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.db.admin import database_bytes, table_stats
    from pipeline.cli.common import open_engine

    engine = open_engine(settings)
    stats = table_stats(engine)
    total = database_bytes(engine)
    if args.json:
        print(json.dumps({"tables": [s.__dict__ for s in stats], "database_bytes": total}))
        return 0
    print(f"{'table':<28} {'rows':>12} {'size':>10}")
    for row in stats:
        print(f"{row.name:<28} {row.rows:>12,} {_size(row.bytes):>10}")
    print(f"{'database':<28} {'':>12} {_size(total):>10}")
    return 0


def cmd_db_fold(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.db import rollups
    from pipeline.cli.common import open_engine

    engine = open_engine(settings)
    before = rollups.dirty_hours(engine)
    started = time.perf_counter()
    folded = rollups.fold_all(engine)
    print(
        json.dumps(
            {
                "dirty_hours_before": before,
                "folded": folded,
                "dirty_hours_after": rollups.dirty_hours(engine),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    )
    return 0


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


def cmd_db_analyst_role(args: argparse.Namespace, settings: Settings) -> int:
    """The password comes from FINSENT_ANALYST_PASSWORD (never the command line, which other
    users can see in the process list); without one a random password is made and printed once."""
    import secrets

    from connectors.db.admin import create_analyst_role
    from pipeline.cli.common import open_engine

    password = settings.analyst_password.get_secret_value() if settings.analyst_password else ""
    generated = not password
    if generated:
        password = secrets.token_urlsafe(18)
    engine = open_engine(settings)
    relations = create_analyst_role(engine, args.name, password, args.statement_timeout)
    url = engine.url
    print(f"role {args.name}: SELECT on {len(relations)} views and tables, read-only, no DDL")
    if generated:
        print(f"password (shown once; store it now): {password}")
    print(f'connect: psql "host={url.host} port={url.port} dbname={url.database} user={args.name}"')
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.dedup import DedupStore
    from connectors.fetch import FetchError, FetchPolicy, PoliteFetcher
    from connectors.ingest import IngestReport, ingest
    from connectors.kafka_io import NewsProducer, make_producer
    from connectors.sources.feed import FeedSource
    from connectors.sources.files import FileColumns, FileSource
    from connectors.sources.http_api import ApiConfig, JsonApiSource
    from pipeline.service.worker import declare_topics, ping_kafka

    declare_topics(settings)
    producer = NewsProducer(
        make_producer(settings.kafka_bootstrap, settings.kafka_max_message_bytes), settings.topic_raw
    )
    dedup = None if args.no_dedup else DedupStore(settings.dedup_path)
    report = IngestReport()
    try:
        if args.file:
            source = FileSource(
                Path(args.file),
                source=args.source,
                columns=FileColumns.from_mapping(args.map) if args.map else None,
                rate_per_s=args.rate,
                limit=args.limit,
                on_error=report.record_error,
                date_format=args.date_format,
                day_first=args.day_first,
                assume_tz=_zone(args.timezone),
            )
            ingest(source.items(), producer, dedup, report=report)
        else:
            fetcher = PoliteFetcher(
                FetchPolicy(
                    timeout_s=settings.fetch_timeout_s,
                    max_bytes=settings.fetch_max_bytes,
                    min_interval_s=settings.fetch_min_interval_s,
                    allow_hosts=frozenset(h.lower() for h in settings.fetch_allow_hosts),
                    user_agent=settings.fetch_user_agent,
                )
            )
            polled = (
                FeedSource(args.feed, fetcher, source=args.source, on_error=report.record_error)
                if args.feed
                else (JsonApiSource(ApiConfig.load(Path(args.api)), fetcher, on_error=report.record_error))
            )
            if not args.once:  # a long-running poller: metrics and health like the other services
                metrics.serve(
                    settings.metrics_host,
                    settings.ingest_metrics_port,
                    {"kafka": lambda: ping_kafka(settings.kafka_bootstrap)},
                )
            while True:
                before = report.produced
                try:
                    ingest(polled.items(), producer, dedup, report=report)
                except FetchError as exc:
                    report.record_error(args.feed or args.api, str(exc))
                metrics.ITEMS_PUBLISHED.labels(args.source or "poll").inc(report.produced - before)
                if args.once:
                    break
                time.sleep(settings.poll_interval_s)
    finally:
        producer.close()
        if dedup:
            dedup.close()
    summary = {
        "read": report.read,
        "produced": report.produced,
        "duplicates": report.duplicates,
        "rejected": len(report.errors),
    }
    for where, reason in report.errors[:_SHOWN_ERRORS]:
        print(f"rejected {where}: {reason}", file=sys.stderr)
    if len(report.errors) > _SHOWN_ERRORS:
        print(
            f"... and {len(report.errors) - _SHOWN_ERRORS} more rejected rows (see the log)", file=sys.stderr
        )
    print(json.dumps(summary))
    return 0


_SHOWN_ERRORS = 20


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from connectors.errors import UserInputError

    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UserInputError(f"--timezone {name!r} is not an IANA time zone (e.g. America/New_York)") from exc


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.db.engine import make_engine
    from pipeline.service.dlq import replay_dead_letters

    report = replay_dead_letters(settings, make_engine(settings.database_url), args.reason)
    print(json.dumps(report.__dict__))
    return 0


def cmd_dlq_count(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.db.engine import make_engine
    from pipeline.service.dlq import unresolved_count

    print(unresolved_count(make_engine(settings.database_url)))
    return 0


def add_commands(sub: Subparsers, run: Register) -> None:
    sub.add_parser("worker", help="consume news.raw, classify, store").set_defaults(func=run(cmd_worker))

    ingest = sub.add_parser("ingest", help="read a source and publish its items to news.raw")
    where = ingest.add_mutually_exclusive_group(required=True)
    where.add_argument("--feed", help="RSS or Atom feed URL (polled)")
    where.add_argument("--api", help="JSON API config file (YAML or JSON; polled)")
    where.add_argument("--file", help="JSONL or CSV file to replay")
    ingest.add_argument("--source", help="source name to record (default: from the feed or file name)")
    ingest.add_argument("--rate", type=float, help="items per second when replaying a file")
    ingest.add_argument("--limit", type=int, help="replay at most this many items")
    ingest.add_argument("--once", action="store_true", help="poll a feed/API once instead of forever")
    ingest.add_argument("--no-dedup", action="store_true", help="publish items even if seen before")
    ingest.add_argument(
        "--map",
        metavar="COLUMN=FIELD,...",
        help="file columns to item fields (title, body, url, published_at, source, tickers), "
        "e.g. headline=title,date=published_at,stock=tickers",
    )
    ingest.add_argument("--date-format", help="strptime format of the file's dates (default: common formats)")
    ingest.add_argument("--day-first", action="store_true", help="read 03/04/2026 as 3 April, not March 4")
    ingest.add_argument("--timezone", default="UTC", help="zone of dates written without one (default UTC)")
    ingest.set_defaults(func=run(cmd_ingest))

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=run(cmd_db_upgrade))
    stats = db.add_parser("stats", help="row count and size of every table")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=run(cmd_db_stats))
    db.add_parser(
        "fold",
        help="recount changed hours into the series rollups now (the scheduler does it every minute)",
    ).set_defaults(func=run(cmd_db_fold))
    role = db.add_parser("analyst-role", help="a read-only login for analysts (PostgreSQL)")
    role.add_argument("--name", required=True)
    role.add_argument("--statement-timeout", type=int, default=60, help="seconds (default 60)")
    role.set_defaults(func=run(cmd_db_analyst_role))

    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True)
    replay = dlq.add_parser("replay", help="send unresolved dead letters back through the pipeline")
    replay.add_argument("--reason", help="only dead letters with this reason code")
    replay.set_defaults(func=run(cmd_dlq_replay))
    dlq.add_parser("count", help="unresolved dead letters").set_defaults(func=run(cmd_dlq_count))
