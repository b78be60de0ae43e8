"""The dashboard in headless Chromium against a database filled by a real run, and the report."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.db.engine import make_engine
from connectors.db.schema import utcnow
from connectors.sources.files import FileSource
from pipeline.jobs.alert_scan import run_scan
from pipeline.service.worker import declare_topics
from pipeline.web import dashboard
from pipeline.web.report import dump_dom, page_url, render
from tests.alert_helpers import Item, store
from tests.conftest import Stack, WorkerProcess, wait_stored
from tests.kafka_helpers import raw_producer
from tests.png_pixels import count_colour

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NEGATIVE_RED = (0xD6, 0x27, 0x28)  # the sentiment chart's negative-share line


@pytest.fixture
def filled(stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path) -> Stack:
    """300 real posts through Kafka and a worker running the base model zero-shot, plus a burst
    of negative items on one ticker so that an alert fires."""
    stack.overrides.update({"classifier": "model", "worker_metrics_port": 0})
    settings = stack.settings()
    declare_topics(settings)
    producer = raw_producer(stack.kafka)
    items = {i.id: i for i in FileSource(data_dir / "tfns_sentiment" / "train.csv", limit=300).items()}
    for item in items.values():
        producer.send(settings.topic_raw, key=item.id.encode(), value=item.to_json_bytes())
    producer.flush()
    producer.close()
    workers()
    wait_stored(stack, len(items), timeout=300)
    engine = make_engine(stack.database_url)
    now = utcnow()
    store(
        engine,
        [Item(now - timedelta(minutes=3, seconds=i), "negative", "Legal", ["ACME"]) for i in range(12)],
    )
    # and a day of history, so that the charts have a line to draw, not one point
    history = [
        Item(now - timedelta(minutes=20 * i + 7), ("negative", "neutral", "positive")[i % 3], "Markets", [])
        for i in range(72)
    ]
    store(engine, history)
    report = run_scan(settings.model_copy(update={"alert_webhook_url": ""}), engine, now)
    assert report.transitions.get("firing", 0) >= 1
    return stack


def test_dashboard_and_report_render_the_data_in_headless_chromium(
    filled: Stack, sqlite_url: str, tmp_path: Path
) -> None:
    """One real run serves both checks (the worker's start-up is the slow part)."""
    engine = make_engine(filled.database_url)
    server = dashboard.start(engine, "127.0.0.1", 0, token=None)
    port = server.server_address[1]
    try:
        url = page_url(port, since_s=86400, bucket_s=900, dimension="topic", key="", report=False)
        dom = dump_dom(url)
        assert 'data-rendered="1"' in dom, dom[-2000:]
        volume = int(re.search(r'id="volume-chart"[^>]*data-points="(\d+)"', dom).group(1))  # type: ignore[union-attr]
        sentiment = int(re.search(r'id="sentiment-chart"[^>]*data-points="(\d+)"', dom).group(1))  # type: ignore[union-attr]
        assert volume >= 1 and sentiment >= 1
        assert 'id="latest" data-rows="50"' in dom and "ticker-negative-surge" in dom
        assert re.search(r'id="alerts" data-rows="[1-9]', dom)
        ticker_dom = dump_dom(
            page_url(port, since_s=86400, bucket_s=900, dimension="ticker", key="ACME", report=False)
        )
        assert re.search(r'id="volume-chart"[^>]*data-points="[1-9]', ticker_dom)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = render(engine, ARTIFACTS / "dashboard.png", since_s=86400)
        assert shot.stat().st_size > 20_000
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/series?dimension=ticker&key=ACME&bucket_s=900&since_s=86400"
        ) as r:
            series = json.loads(r.read())
        assert sum(series["volume"]) == 12 and max(v or 0 for v in series["negative_share"]) == 1.0
    finally:
        server.shutdown()

    # the report: a PNG whose chart shows the data, unlike the report of an empty database
    full = render(engine, tmp_path / "report.png", since_s=86400)
    empty = render(make_engine(sqlite_url), tmp_path / "empty.png", since_s=86400)
    red_full, red_empty = count_colour(full, NEGATIVE_RED), count_colour(empty, NEGATIVE_RED)
    # the empty report has only the legend's swatch in that colour; the full one has the line
    assert red_full > red_empty + 1000, (red_full, red_empty)
    pdf = render(engine, tmp_path / "report.pdf", since_s=86400)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_a_dashboard_on_a_public_address_needs_a_token(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    from connectors.errors import UserInputError

    with pytest.raises(UserInputError, match="FINSENT_DASHBOARD_TOKEN"):
        dashboard.start(engine, "0.0.0.0", 0, token=None)
    server = dashboard.start(engine, "127.0.0.1", 0, token="t0ken")
    port = server.server_address[1]
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models")
        assert refused.value.code == 401
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/models", headers={"Authorization": "Bearer t0ken"}
        )
        with urllib.request.urlopen(request) as ok:
            assert json.loads(ok.read()) == []
        with pytest.raises(urllib.error.HTTPError) as traversal:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/static/../dashboard.py?token=t0ken")
        assert traversal.value.code == 404
    finally:
        server.shutdown()
