"""The `finsent` command line. Settings are read once here and passed down."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from connectors.errors import UserInputError
from pipeline import cli_alerts, cli_models, logs, metrics
from pipeline.settings import Settings, load_settings

log = logging.getLogger("finsent")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    logs.configure(
        settings.log_level, settings.log_format if not getattr(args, "text_logs", False) else "text"
    )
    return settings


# --- worker / db -----------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.worker import run_worker

    run_worker(_settings(args))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from connectors.db.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


# --- ingest ----------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from connectors.dedup import DedupStore
    from connectors.fetch import FetchError, FetchPolicy, PoliteFetcher
    from connectors.ingest import IngestReport, ingest
    from connectors.kafka_io import NewsProducer, make_producer
    from connectors.sources.feed import FeedSource
    from connectors.sources.files import FileSource
    from connectors.sources.http_api import ApiConfig, JsonApiSource
    from pipeline.worker import declare_topics, ping_kafka

    settings = _settings(args)
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
                rate_per_s=args.rate,
                limit=args.limit,
                on_error=report.record_error,
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
    print(json.dumps(summary))
    return 0


# --- status ----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline.cli_models import open_engine
    from pipeline.status import collect, render

    settings = _settings(args)
    status = collect(settings, open_engine(settings))
    print(json.dumps(status) if args.json else render(status))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pipeline import dashboard
    from pipeline.cli_models import open_engine

    settings = _settings(args)
    host = args.host or settings.dashboard_host
    port = args.port or settings.dashboard_port
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    dashboard.start(open_engine(settings), host, port, token)
    print(f"dashboard on http://{host}:{port}/" + ("  (token required)" if token else ""), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def cmd_report(args: argparse.Namespace) -> int:
    from alerts.rules import parse_duration
    from pipeline.cli_models import open_engine
    from pipeline.report import render

    settings = _settings(args)
    path = render(
        open_engine(settings),
        Path(args.output),
        since_s=parse_duration(args.since),
        dimension=args.dimension,
        key=args.key or "",
        chromium=settings.chromium,
    )
    print(f"report written to {path}")
    return 0


# --- dlq -------------------------------------------------------------------------------------


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    from connectors.db.engine import make_engine
    from pipeline.dlq import replay_dead_letters

    settings = _settings(args)
    report = replay_dead_letters(settings, make_engine(settings.database_url), args.reason)
    print(json.dumps(report.__dict__))
    return 0


def cmd_dlq_count(args: argparse.Namespace) -> int:
    from connectors.db.engine import make_engine
    from pipeline.dlq import unresolved_count

    settings = _settings(args)
    print(unresolved_count(make_engine(settings.database_url)))
    return 0


# --- demo ------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(_settings(args), items=args.items)


# --- development services --------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace) -> int:
    from pipeline.devstack import kafka, postgres
    from pipeline.devstack.config import broker_config, postgres_config

    settings = _settings(args)
    if args.service == "kafka":
        broker = broker_config(settings, port=args.port)
        if args.action == "start":
            seconds = kafka.start(broker)
            print(f"kafka {kafka.KAFKA_VERSION} ready on {broker.bootstrap} ({seconds:.1f} s)")
        elif args.action == "stop":
            print("kafka stopped" if kafka.stop(broker) else "kafka was not running")
        elif args.action == "fetch":
            print(kafka.fetch_classpath(broker))
        else:
            ready = kafka.is_ready(broker.bootstrap)
            print(f"kafka on {broker.bootstrap}: {'ready' if ready else 'not running'}")
            return 0 if ready else 1
    else:
        pg = postgres_config(settings, port=args.port)
        if args.action == "start":
            postgres.start(pg)
            print(f"postgres ready on 127.0.0.1:{pg.port}")
        elif args.action == "stop":
            print("postgres stopped" if postgres.stop(pg) else "postgres was not running")
        elif args.action == "createdb":
            print(postgres.create_database(pg, args.name))
        else:
            running = postgres.is_running(pg)
            print(f"postgres on 127.0.0.1:{pg.port}: {'running' if running else 'not running'}")
            return 0 if running else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finsent", description="Real-time financial news classification.")
    parser.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="consume news.raw, classify, store").set_defaults(func=cmd_worker)

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
    ingest.set_defaults(func=cmd_ingest)

    status = sub.add_parser("status", help="throughput, lag, dead letters, models, retrain, alerts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    dash = sub.add_parser("dashboard", help="read-only web dashboard")
    dash.add_argument("--host", help="bind address (default FINSENT_DASHBOARD_HOST)")
    dash.add_argument("--port", type=int, help="port (default FINSENT_DASHBOARD_PORT)")
    dash.set_defaults(func=cmd_dashboard)
    report = sub.add_parser("report", help="the dashboard's main charts as a PNG or PDF")
    report.add_argument("--since", default="7d", help="period, e.g. 1d, 7d, 30d")
    report.add_argument("--output", required=True, help="report.png or report.pdf")
    report.add_argument("--dimension", choices=["topic", "ticker"], default="topic")
    report.add_argument("--key", help="one topic or ticker (default: all)")
    report.set_defaults(func=cmd_report)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True)
    replay = dlq.add_parser("replay", help="send unresolved dead letters back through the pipeline")
    replay.add_argument("--reason", help="only dead letters with this reason code")
    replay.set_defaults(func=cmd_dlq_replay)
    dlq.add_parser("count", help="unresolved dead letters").set_defaults(func=cmd_dlq_count)

    demo = sub.add_parser("demo", help="end-to-end demo on embedded defaults")
    demo.add_argument("--items", type=int, default=2000)
    demo.set_defaults(func=cmd_demo)

    dev = sub.add_parser("dev", help="local development services (Kafka, PostgreSQL)")
    dev.add_argument("service", choices=["kafka", "postgres"])
    dev.add_argument("action", choices=["start", "stop", "status", "fetch", "createdb"])
    dev.add_argument("--port", type=int, help="listen port (default from settings)")
    dev.add_argument("--name", default="finsent", help="database name for createdb")
    dev.set_defaults(func=cmd_dev)

    def with_settings(handler: Callable[[argparse.Namespace, Settings], int]) -> Callable[..., int]:
        return lambda args: handler(args, _settings(args))

    cli_models.add_commands(sub, with_settings)
    cli_alerts.add_commands(sub, with_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserInputError as exc:  # the operator's input: one clear line, no traceback
        print(f"finsent: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last line of defence: a clear message, not a traceback
        log.exception("command failed")
        print(f"finsent: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
