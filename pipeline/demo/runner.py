"""`finsent demo`: the whole pipeline on embedded defaults, accounted for item by item.

Starts the local Kafka broker if nothing answers at the configured bootstrap, uses a fresh
SQLite database under FINSENT_HOME/demo, replays real items from the shared data sets (or a
small bundled sample when they are absent) plus a few deliberately malformed messages, runs a
real worker process, and exits 0 only if every published message is a row or a dead letter.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from kafka import KafkaAdminClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from connectors.db.engine import make_engine
from connectors.db.migrate import upgrade
from connectors.db.writer import count_rows
from connectors.kafka_io import NewsProducer, make_producer
from connectors.news_item import NewsItem
from connectors.sources.files import FileSource
from models.registry import ModelRegistry
from pipeline.demo.model import demo_model
from pipeline.devstack import kafka as devkafka
from pipeline.devstack.config import broker_config
from pipeline.service.worker import declare_topics
from pipeline.settings import Settings

SAMPLE = Path(__file__).with_name("sample.jsonl")
MALFORMED: list[bytes] = [
    b"{this is not json",
    b'{"schema_version": 1, "title": "\xff\xfe not utf-8"}',
    b'["a", "list", "not", "an", "object"]',
    b'{"schema_version": 1, "id": "demo-missing-fields"}',
    b'{"schema_version": 7, "id": "demo-future-version", "title": "x"}',
]


def _sources(settings: Settings) -> list[Path]:
    names = ["tfn_topic/train.csv", "tfns_sentiment/train.csv", "sentfin/train.csv"]
    found = [settings.data_dir / n for n in names if (settings.data_dir / n).exists()]
    return found or [SAMPLE]


def _items(settings: Settings, limit: int) -> Iterator[NewsItem]:
    """Round-robin over the data sets so the demo shows every kind of headline."""
    streams = [
        FileSource(
            path, source=f"demo:{path.parent.name if path != SAMPLE else 'sample'}", columns=None
        ).items()
        for path in _sources(settings)
    ]
    seen: set[str] = set()
    produced = 0
    for item in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
        if item is None or item.id in seen:
            continue
        seen.add(item.id)
        yield item
        produced += 1
        if produced >= limit:
            return


def run_demo(settings: Settings, items: int = 2000) -> int:
    run = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    home = settings.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    database_url = f"sqlite:///{home / 'finsent.db'}"
    demo = settings.model_copy(update={"database_url": database_url}).isolated(f"demo-{run}")
    print(f"finsent demo — Kafka {settings.kafka_bootstrap}, database {database_url}")
    started_broker = None
    if not devkafka.is_ready(settings.kafka_bootstrap):
        broker = started_broker = broker_config(settings)
        print(
            f"starting the local Kafka broker {devkafka.KAFKA_VERSION} "
            "(from Maven Central; the first run downloads it)"
        )
        seconds = devkafka.start(broker)
        print(f"Kafka ready in {seconds:.1f} s")
    upgrade(database_url)
    model = _adopt_trained_model(settings, make_engine(database_url))
    quick = None
    if model:
        print(f"model: {model} (your active model)")
    elif settings.classifier == "model":
        quick = demo_model(settings, make_engine(database_url))
        if quick is None:
            print(
                f"model: base encoder, every instruction zero-shot (no training data in {settings.data_dir})"
            )
        else:
            print(
                f"model: {quick.version} ({'trained' if quick.trained_now else 'cached'} in "
                f"{quick.seconds:.0f} s; quick recipe, heads only) — `finsent train --recipe default` "
                "(about 25 min on 2 cores) fine-tunes the encoder as well"
            )
    declare_topics(demo)

    producer = NewsProducer(make_producer(demo.kafka_bootstrap, demo.kafka_max_message_bytes), demo.topic_raw)
    batch = list(_items(demo, items))
    producer.publish(batch)
    for value in MALFORMED:
        producer.publish_raw(None, value)
    producer.close()
    published = len(batch) + len(MALFORMED)
    print(f"published {len(batch)} news items and {len(MALFORMED)} malformed messages to {demo.topic_raw}")

    env = {**os.environ, **demo.to_env()}
    log_path = home / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    engine = make_engine(database_url)
    ok = False
    try:
        ok = _follow(engine, worker, published, timeout_s=max(120.0, published / 20))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        _drop_topics(demo)
        if started_broker is not None:
            devkafka.stop(started_broker)
    counts = count_rows(engine)
    _summary(engine, published, len(batch), counts, database_url)
    if quick is not None:
        print(
            "the model's accuracy on held-out examples it never saw (a tenth of its data sets; "
            "entities: SEntFiN's validation headlines):"
        )
        for name, figures in quick.held_out.items():
            print(
                f"  {name:<16} accuracy {figures['accuracy']:.3f}  macro-F1 {figures['macro_f1']:.3f}  "
                f"(n={figures['n']})"
            )
    if not ok:
        print(f"NOT every message was accounted for; the worker's log is {log_path}")
        return 1
    return 0


def _adopt_trained_model(settings: Settings, demo_engine: Engine) -> str | None:
    """The operator's active model (in the main database), registered in the demo's database too."""
    if settings.classifier != "model":
        return None
    try:
        active = ModelRegistry(settings.models_dir, make_engine(settings.database_url)).active()
    except SQLAlchemyError:
        return None  # no main database yet (or not reachable): the demo runs zero-shot
    if active is None:
        return None
    ModelRegistry(settings.models_dir, demo_engine).adopt(active)
    return active.version


def _follow(engine: Engine, worker: subprocess.Popen[bytes], expected: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    with tqdm(total=expected, unit="msg", desc="worker") as bar:
        while time.monotonic() < deadline:
            counts = count_rows(engine)
            done = counts["articles"] + counts["dlq_records"]
            bar.update(done - bar.n)
            if done >= expected:
                return done == expected
            if worker.poll() is not None:
                return False
            time.sleep(0.5)
    return False


def _drop_topics(settings: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics(
            [settings.topic_raw, settings.topic_dlq, settings.topic_classified, settings.topic_labels]
        )
    except Exception as exc:  # leftover demo topics are harmless; say so and go on
        print(f"(could not delete the demo topics: {exc})")
    finally:
        admin.close()


def _summary(engine: Engine, published: int, good: int, counts: dict[str, int], url: str) -> None:
    with engine.connect() as conn:
        topics = conn.execute(
            text(
                "SELECT topic, COUNT(*) FROM v_articles_classified "
                "GROUP BY topic ORDER BY COUNT(*) DESC LIMIT 5"
            )
        ).all()
        mix = conn.execute(
            text(
                "SELECT sentiment, COUNT(*) FROM v_articles_classified "
                "GROUP BY sentiment ORDER BY COUNT(*) DESC"
            )
        ).all()
        reasons = conn.execute(
            text("SELECT reason_code, COUNT(*) FROM dlq_records GROUP BY reason_code")
        ).all()
    print()
    print("=== summary ===")
    print(f"messages in:        {published} ({good} news items, {published - good} malformed)")
    print(f"articles stored:    {counts['articles']}")
    print(f"predictions stored: {counts['predictions']}")
    print(f"dead letters:       {counts['dlq_records']}  " + ", ".join(f"{r}: {n}" for r, n in reasons))
    print(f"accounted for:      {counts['articles'] + counts['dlq_records']} of {published}")
    print("top topics:         " + ", ".join(f"{t} ({n})" for t, n in topics))
    print("sentiment mix:      " + ", ".join(f"{s}: {n}" for s, n in mix))
    print()
    print(f"look further: sqlite3 {url.removeprefix('sqlite:///')}")
    print("  SELECT topic, items, negative_share FROM v_topic_sentiment_daily ORDER BY items DESC;")
    print(
        "  SELECT ticker, items, mean_sentiment FROM v_ticker_sentiment_daily ORDER BY items DESC LIMIT 10;"
    )
