"""Links to `news.raw` end to end: one `finsent scrape` process against the loopback news site.

The site (tests/news_site.py) serves article pages on several loopback hosts; discovery puts
one link per page on `news.links` (not timed), then one scraper process is started and timed
from its first published item to its last (its start-up and group join reported apart). The
per-host politeness interval is set to 0 here, so the figure is the scraper's own capacity; in
production the interval (1 s by default) caps each host at one page per second and the rate
grows with the number of hosts, up to `FINSENT_SCRAPE_CONCURRENCY` at a time.
Baseline, measured in the same run on the same pages: one sequential httpx client fetching each
page and doing nothing else (no robots.txt, extraction, Kafka or commits).
Run with `make bench-scrape`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from connectors.kafka_io import NewsProducer, make_producer, read_topic  # noqa: E402
from connectors.scrape.discovery import discover  # noqa: E402
from connectors.scrape.links import make_link  # noqa: E402
from pipeline.service.scraper import declare_scrape_topics  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.news_site import NewsSite, hosts_on_distinct_partitions  # noqa: E402


def count(settings: Settings) -> tuple[int, float | None]:
    """Messages on news.raw and the newest one's timestamp (seconds)."""
    records = list(read_topic(settings.kafka_bootstrap, settings.topic_raw, settings.kafka_max_message_bytes))
    return len(records), (max(r.timestamp for r in records) / 1000 if records else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--pages-per-host", type=int, default=40)
    args = parser.parse_args()
    hosts = hosts_on_distinct_partitions(args.hosts, args.hosts)
    settings = Settings(
        kafka_bootstrap=os.environ.get("FINSENT_TEST_KAFKA", "127.0.0.1:19092"),
        home=Path(os.environ.get("FINSENT_HOME", ROOT / ".finsent-test"))
        / f"bench-scrape-{uuid.uuid4().hex[:6]}",
        fetch_allow_hosts=hosts,
        fetch_min_interval_s=0.0,
        topic_partitions=args.hosts,
        scrape_concurrency=args.hosts,
        scrape_handover_s=0.0,
        scraper_metrics_port=0,
        log_level="INFO",
    ).isolated(f"bench{uuid.uuid4().hex[:8]}")
    site = NewsSite(settings.data_dir, hosts, pages_per_host=args.pages_per_host, faults=False)
    site.start()
    urls = [e.url for e in site.expected]
    try:
        started = time.perf_counter()
        with httpx.Client() as client:
            for url in urls:
                client.get(url).raise_for_status()
        baseline = len(urls) / (time.perf_counter() - started)

        declare_scrape_topics(settings)
        producer = NewsProducer(
            make_producer(settings.kafka_bootstrap, settings.kafka_max_message_bytes), settings.topic_links
        )
        discover((make_link(url=u, source="bench") for u in urls), producer, settings.topic_links, None)
        producer.close()

        launched = time.time()
        scraper = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "finsent"), "scrape"],
            env={**os.environ, **settings.to_env()},
            stdout=open(settings.home.parent / "bench-scraper.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        try:
            first_at = None
            while True:
                done, _newest = count(settings)
                if done and first_at is None:
                    first_at = time.time()
                if done >= len(urls):
                    break
                if scraper.poll() is not None:
                    raise SystemExit(f"the scraper exited with {scraper.returncode}")
                time.sleep(0.5)
        finally:
            scraper.terminate()
            scraper.wait(timeout=60)
        records = list(
            read_topic(settings.kafka_bootstrap, settings.topic_raw, settings.kafka_max_message_bytes)
        )
        stamps = sorted(r.timestamp / 1000 for r in records)
        span = max(1e-3, stamps[-1] - stamps[0])
        rate = (len(stamps) - 1) / span
    finally:
        site.stop()
    print(
        f"{len(urls)} article links on {len(hosts)} hosts, interval 0, {os.cpu_count()} cores, "
        "one scraper process"
    )
    print(
        f"scraper start-up and group join: {stamps[0] - launched:.1f} s "
        f"(first item seen after {(first_at or launched) - launched:.1f} s)"
    )
    print(f"links -> news.raw (fetch, robots.txt, extract, publish, commit): {rate:.1f} pages/s")
    print(f"baseline: sequential fetch only, no extraction or Kafka:        {baseline:.1f} pages/s")
    print(f"ratio: {rate / baseline:.2f}x the fetch-only baseline")


if __name__ == "__main__":
    main()
