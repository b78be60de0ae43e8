"""Acceptance of the spine: real files → ingest → real Kafka → worker → real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article, Prediction
from connectors.news_item import make_item
from connectors.sources.files import FileSource
from pipeline.worker import declare_topics
from tests.conftest import Stack, WorkerProcess, counts, wait_for, wait_stored
from tests.kafka_helpers import group_lag, raw_producer, read_all, stable_members

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def ingest(stack: Stack, path: Path, *extra: str) -> dict[str, int]:
    result = stack.finsent("ingest", "--file", str(path), *extra)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_5000_items_exact_then_replay_adds_nothing(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path
) -> None:
    source = data_dir / "tfn_topic" / "train.csv"
    first = ingest(stack, source, "--limit", "5000")
    assert first["read"] == 5000 and first["produced"] == 5000 - first["duplicates"]
    worker = workers()
    final = wait_stored(stack, first["produced"])
    assert final["articles"] == first["produced"]
    assert final["predictions"] == 2 * first["produced"]  # sentiment and topic for each
    assert final["dlq_records"] == 0

    # The same file again: dedup publishes nothing ...
    second = ingest(stack, source, "--limit", "5000")
    assert second["produced"] == 0 and second["duplicates"] == 5000
    # ... and even re-publishing everything (dedup off) adds no row: the writes are idempotent.
    forced = ingest(stack, source, "--limit", "5000", "--no-dedup")
    assert forced["produced"] == 5000
    settings = stack.settings()
    wait_for(lambda: group_lag(stack.kafka, settings.consumer_group, settings.topic_raw) == 0, 240, "lag 0")
    assert counts(stack) == final
    assert worker.alive()
    classified = read_all(stack.kafka, settings.topic_classified)
    assert {r.key.decode() for r in classified} == _article_ids(stack)


def _article_ids(stack: Stack) -> set[str]:
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        ids = set(session.scalars(select(Article.id)))
    engine.dispose()
    return ids


def test_worker_sigkill_mid_run_loses_and_duplicates_nothing(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path
) -> None:
    produced = ingest(stack, data_dir / "tfn_topic" / "train.csv", "--limit", "5000")["produced"]
    worker = workers()
    wait_for(lambda: counts(stack)["articles"] >= 800, 120, "the worker to be mid-run", interval=0.05)
    worker.kill()
    at_kill = counts(stack)["articles"]
    assert at_kill < produced, "the worker finished before the kill; the test did not test a crash"
    workers()
    final = wait_stored(stack, produced)
    assert final["articles"] == produced
    assert final["predictions"] == 2 * produced
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        per_article = session.execute(
            select(Prediction.article_id, func.count()).group_by(Prediction.article_id)
        ).all()
    engine.dispose()
    assert len(per_article) == produced and {n for _, n in per_article} == {2}


def _bad_messages(rng: random.Random) -> list[tuple[str, bytes]]:
    good = json.loads(
        make_item(source="t", title="Acme beats estimates", url="https://x.test/a").to_json_bytes()
    )
    bad: list[tuple[str, bytes]] = []
    for i in range(50):
        bad.append(("invalid_json", b'{"schema_version": 1, "id": "' + str(i).encode() + b'", "title": '))
    for i in range(40):
        bad.append(("invalid_utf8", b'{"title": "\xff\xfe broken ' + str(i).encode() + b'"}'))
    for i in range(40):
        item = dict(good, id=f"missing{i:04d}x")
        del item[rng.choice(["title", "published_at", "source", "fetched_at"])]
        bad.append(("schema_violation", json.dumps(item).encode()))
    for i in range(40):
        item = dict(good, id=f"wrongtype{i:04d}")
        field, value = rng.choice([("title", 42), ("tickers", "AAPL"), ("published_at", 17), ("body", ["x"])])
        item[field] = value
        bad.append(("schema_violation", json.dumps(item).encode()))
    for i in range(20):
        bad.append(("not_an_object", json.dumps([i, "not", "an", "object"]).encode()))
    for i in range(5):
        bad.append(
            ("field_too_large", json.dumps(dict(good, id=f"huge{i:08d}", body="x" * 5_000_000)).encode())
        )
    for i in range(5):
        bad.append(
            ("unsupported_schema_version", json.dumps(dict(good, id=f"v9{i:08d}", schema_version=9)).encode())
        )
    return bad


def test_200_malformed_messages_all_dead_lettered_with_reasons(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path
) -> None:
    rng = random.Random(7)
    settings = stack.settings()
    declare_topics(settings)
    bad = _bad_messages(rng)
    assert len(bad) == 200
    good = {
        item.id: item for item in FileSource(data_dir / "tfns_sentiment" / "train.csv", limit=1000).items()
    }
    messages = [(k.encode(), item.to_json_bytes()) for k, item in good.items()] + [(None, v) for _, v in bad]
    rng.shuffle(messages)
    producer = raw_producer(stack.kafka)
    for key, value in messages:
        producer.send(settings.topic_raw, key=key, value=value)
    producer.flush()
    producer.close()

    worker = workers()
    final = wait_stored(stack, len(messages))
    assert final == {"articles": len(good), "predictions": 2 * len(good), "dlq_records": 200}
    assert worker.alive()
    dead = read_all(stack.kafka, settings.topic_dlq)
    assert len(dead) == 200
    assert Counter(hashlib.sha256(r.value).hexdigest() for r in dead) == Counter(
        hashlib.sha256(v).hexdigest() for _, v in bad
    ), "the DLQ must carry the original bytes unchanged"
    reasons = Counter(dict(r.headers)["finsent.reason_code"].decode() for r in dead)
    assert reasons == Counter(code for code, _ in bad)
    assert all(dict(r.headers)["finsent.reason"] for r in dead)


def test_two_workers_share_partitions_and_both_work(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path
) -> None:
    settings = stack.settings()
    declare_topics(settings)
    first, second = workers(), workers()
    # Both must be members before the data arrives, so the group has split the partitions.
    wait_for(lambda: stable_members(stack.kafka, settings.consumer_group) == 2, 90, "two group members")
    produced = ingest(stack, data_dir / "tfn_topic" / "train.csv", "--limit", "4000")["produced"]
    final = wait_stored(stack, produced)
    assert final["articles"] == produced
    stored_by = [sum(int(e["stored"]) for e in w.batch_logs()) for w in (first, second)]
    assert all(n > 0 for n in stored_by), f"each worker should store items, got {stored_by}"
    assert sum(stored_by) >= produced


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)")
def test_news_raw_is_plain_json_for_a_non_python_client(stack: Stack, data_dir: Path) -> None:
    settings = stack.settings()
    produced = ingest(stack, data_dir / "sentfin" / "train.csv", "--limit", "25")["produced"]
    out = subprocess.run(
        [
            "kcat",
            "-b",
            stack.kafka,
            "-C",
            "-t",
            settings.topic_raw,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k\t%s\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == produced == 25
    for line in lines:
        key, value = line.split("\t", 1)
        item = json.loads(value)
        assert item["id"] == key and item["schema_version"] == 1 and item["source"] == "file:train"
        assert item["title"] and item["published_at"]
