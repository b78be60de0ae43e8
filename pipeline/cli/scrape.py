"""`finsent discover | scrape | extract`: find article links, scrape them, extract saved pages."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pipeline.cli.common import Register, Subparsers
from pipeline.settings import Settings
from pipeline.telemetry import metrics


def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.dedup import DedupStore
    from connectors.fetch import FetchError, PoliteFetcher
    from connectors.kafka_io import NewsProducer, make_producer, ping_kafka
    from connectors.scrape.discovery import DiscoveryReport, discover
    from connectors.scrape.sitemap import SitemapSource
    from connectors.sources.feed import FeedSource
    from connectors.sources.http_api import ApiConfig, JsonApiSource
    from pipeline.service.scraper import declare_scrape_topics, fetch_policy

    declare_scrape_topics(settings)
    producer = NewsProducer(
        make_producer(settings.kafka_bootstrap, settings.kafka_max_message_bytes, "finsent-discover"),
        settings.topic_links,
    )
    dedup = None if args.no_dedup else DedupStore(settings.dedup_path)
    fetcher = PoliteFetcher(fetch_policy(settings))
    report = DiscoveryReport()
    where = args.feed or args.sitemap or args.api
    lister = (
        FeedSource(args.feed, fetcher, source=args.source, on_error=report.record_error)
        if args.feed
        else SitemapSource(args.sitemap, fetcher, source=args.source, on_error=report.record_error)
        if args.sitemap
        else JsonApiSource(ApiConfig.load(Path(args.api)), fetcher, on_error=report.record_error)
    )
    if not args.once:
        metrics.serve(
            settings.metrics_host,
            settings.ingest_metrics_port,
            {"kafka": lambda: ping_kafka(settings.kafka_bootstrap)},
        )
    try:
        while True:
            before = report.produced
            try:
                discover(lister.links(), producer, settings.topic_links, dedup, report=report)
            except FetchError as exc:
                report.record_error(where, str(exc))
            metrics.LINKS_PUBLISHED.labels(args.source or "poll").inc(report.produced - before)
            if args.once:
                break
            time.sleep(settings.poll_interval_s)
    finally:
        producer.close()
        fetcher.close()
        if dedup:
            dedup.close()
    print(
        json.dumps(
            {
                "read": report.read,
                "produced": report.produced,
                "duplicates": report.duplicates,
                "rejected": len(report.errors),
            }
        )
    )
    return 0


def cmd_scrape(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.service.scraper import run_scraper

    run_scraper(settings)
    return 0


def cmd_extract(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.errors import UserInputError
    from connectors.scrape.batch_extract import extract_files, page_files

    source = Path(args.input)
    if not source.exists():
        raise UserInputError(f"no such file or folder: {source}")
    files = page_files(source)
    output = sys.stdout if args.output == "-" else Path(args.output).open("w", encoding="utf-8")  # noqa: SIM115
    counts = {"files": 0, "extracted": 0}
    try:
        for record in extract_files(files, source, min_words=settings.scrape_min_words):
            output.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts["files"] += 1
            counts["extracted"] += int(bool(record["extracted"]))
    finally:
        if output is not sys.stdout:
            output.close()
    print(json.dumps(counts), file=sys.stderr if args.output == "-" else sys.stdout)
    return 0


def add_commands(sub: Subparsers, run: Register) -> None:
    discover = sub.add_parser(
        "discover", help="list article links from a feed, news sitemap or API into news.links"
    )
    where = discover.add_mutually_exclusive_group(required=True)
    where.add_argument("--feed", help="RSS or Atom feed URL")
    where.add_argument("--sitemap", help="news sitemap or sitemap index URL")
    where.add_argument("--api", help="JSON API config file (YAML or JSON)")
    discover.add_argument("--source", help="source name to record (default: from the listing)")
    discover.add_argument("--once", action="store_true", help="poll once instead of forever")
    discover.add_argument("--no-dedup", action="store_true", help="publish links even if seen before")
    discover.set_defaults(func=run(cmd_discover))

    sub.add_parser("scrape", help="scraper worker: news.links -> fetch, extract -> news.raw").set_defaults(
        func=run(cmd_scrape)
    )

    extract = sub.add_parser("extract", help="extract saved pages (.html, .html.gz) to JSON lines")
    extract.add_argument("--input", required=True, help="a page file or a folder of them")
    extract.add_argument("--output", required=True, help="JSONL file to write ('-' for standard output)")
    extract.set_defaults(func=run(cmd_extract))
