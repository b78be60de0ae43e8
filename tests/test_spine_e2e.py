"""Acceptance of the spine: real files → ingest → real Kafka → worker → real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article
from pipeline.service.worker import declare_topics
from tests.conftest import Stack, WorkerProcess, counts, wait_for, wait_stored
from tests.current_helpers import assert_current_is_latest, assert_series_views_are_exact
from tests.kafka_helpers import group_lag, read_all, stable_members

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def ingest(stack: Stack, path: Path, *extra: str) -> dict[str, int]:
    result = stack.finsent("ingest", "--file", str(path), *extra)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.heavy
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
    engine = make_engine(stack.database_url)
    assert assert_current_is_latest(engine) >= 2 * first["produced"]
    assert assert_series_views_are_exact(engine) > 0
    engine.dispose()
    assert worker.alive()
    classified = read_all(stack.kafka, settings.topic_classified)
    assert {r.key.decode() for r in classified} == _article_ids(stack)


def _article_ids(stack: Stack) -> set[str]:
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        ids = set(session.scalars(select(Article.id)))
    engine.dispose()
    return ids


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
