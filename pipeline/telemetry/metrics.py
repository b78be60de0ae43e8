"""Prometheus metrics and health endpoints of the long-running processes.

One registry per process (worker, scheduler, ingest), served with the official client's text
format on `/metrics`; `/healthz` answers while the process is alive, `/readyz` runs the
process's readiness checks (Kafka and the database reachable, a model loaded) and answers 503
with the failing check when one fails. A port already taken is logged and skipped rather than
stopping the process: metrics must never be the reason news is not processed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# --- worker ------------------------------------------------------------------------------------
ITEMS_CONSUMED = Counter(
    "finsent_items_consumed_total", "Messages taken from Kafka", ["topic"], registry=REGISTRY
)
ITEMS_CLASSIFIED = Counter("finsent_items_classified_total", "Items classified and stored", registry=REGISTRY)
ROWS_WRITTEN = Counter(
    "finsent_rows_written_total", "New database rows written by the worker", ["table"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "finsent_dead_letters_total", "Messages sent to the DLQ", ["reason"], registry=REGISTRY
)
BATCH_SIZE = Histogram(
    "finsent_batch_size",
    "Messages per batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
CLASSIFY_SECONDS = Histogram(
    "finsent_classification_seconds", "Model time per batch", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
WRITE_SECONDS = Histogram(
    "finsent_db_write_seconds", "Database write time per batch", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
END_TO_END_SECONDS = Histogram(
    "finsent_end_to_end_seconds",
    "From the message's Kafka timestamp to its row being committed",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "finsent_consumer_lag",
    "Messages not yet committed by the consumer group, per partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
ACTIVE_MODEL = Gauge(
    "finsent_active_model_info",
    "1 for the model version each instruction runs on",
    ["instruction", "version"],
    registry=REGISTRY,
)
LABELS_STORED = Counter("finsent_labels_stored_total", "Human labels stored", registry=REGISTRY)
PARTITION_ASSIGNMENTS = Counter(
    "finsent_worker_partition_assignments_total",
    "Partition assignments this worker received: one at start, one more per rebalance",
    registry=REGISTRY,
)

# --- scheduler ---------------------------------------------------------------------------------
JOB_RUNS = Counter(
    "finsent_scheduler_job_runs_total", "Scheduled job runs", ["job", "outcome"], registry=REGISTRY
)
JOB_SECONDS = Histogram(
    "finsent_scheduler_job_seconds",
    "Scheduled job duration",
    ["job"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ALERTS_FIRED = Counter(
    "finsent_alerts_fired_total", "Alerts that started firing", ["rule"], registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "finsent_notifications_total", "Notification deliveries", ["receiver", "outcome"], registry=REGISTRY
)

# --- ingest ------------------------------------------------------------------------------------
ITEMS_PUBLISHED = Counter(
    "finsent_items_published_total", "Items ingest published to news.raw", ["source"], registry=REGISTRY
)
LINKS_PUBLISHED = Counter(
    "finsent_links_published_total", "Links discovery published to news.links", ["source"], registry=REGISTRY
)

# --- scraper -----------------------------------------------------------------------------------
PAGES = Counter(
    "finsent_scrape_pages_total",
    "Links scraped, by outcome: extracted, not_extracted (published with the listing's text) or the "
    "failure's reason code",
    ["outcome"],
    registry=REGISTRY,
)
FETCH_SECONDS = Histogram(
    "finsent_scrape_fetch_seconds",
    "From taking a link to its outcome (robots.txt, politeness wait, retries, extraction)",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HOST_INTERVAL = Gauge(
    "finsent_scrape_host_interval_seconds",
    "Minimum interval between requests to a host (policy, or a longer robots.txt crawl-delay)",
    ["host"],
    registry=REGISTRY,
)


Check = Callable[[], None]  # raises when not ready


class _Handler(BaseHTTPRequestHandler):
    checks: Mapping[str, Check] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b'{"status": "alive"}\n', "application/json")
        elif path == "/readyz":
            failures = {}
            for name, check in self.checks.items():
                try:
                    check()
                except Exception as exc:  # a readiness probe reports, it never raises
                    failures[name] = f"{type(exc).__name__}: {exc}"[:300]
            status = 503 if failures else 200
            body = {
                "status": "not ready" if failures else "ready",
                "checks": sorted(self.checks),
                "failing": failures,
            }
            self._send(status, (json.dumps(body) + "\n").encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # scrapes are not worth a log line each
        pass


def serve(host: str, port: int, checks: Mapping[str, Check]) -> ThreadingHTTPServer | None:
    """Start the endpoint in a daemon thread; None when disabled (port 0) or the port is taken."""
    if port <= 0:
        return None
    handler = type("Handler", (_Handler,), {"checks": dict(checks)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        log.warning(
            "metrics endpoint not started",
            extra={"event": "metrics_unavailable", "port": port, "error": str(exc)},
        )
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="finsent-metrics", daemon=True).start()
    log.info(
        "metrics endpoint", extra={"event": "metrics_serving", "host": host, "port": server.server_address[1]}
    )
    return server
