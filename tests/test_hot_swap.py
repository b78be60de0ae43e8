"""Labels in over Kafka and files, the annotation queue, a promoted model hot-swapped into a running
worker: no restart, no message lost or processed twice, every row tagged with its model version."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article, DeadLetter, Label, Prediction
from models.labels import text_hash
from pipeline.jobs.backfill import count_due
from tests.conftest import Stack, WorkerProcess, counts, wait_for, wait_stored
from tests.current_helpers import assert_current_is_latest, assert_series_views_are_exact
from tests.kafka_helpers import raw_producer
from tests.model_helpers import sentiment_slice

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _ingest(stack: Stack, path: Path, limit: int) -> int:
    result = stack.finsent("ingest", "--file", str(path), "--limit", str(limit))
    return int(json.loads(result.stdout.splitlines()[-1])["produced"])


def _versions_by_article(stack: Stack) -> dict[str, Counter[str]]:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Prediction.article_id, Prediction.model_version)).all()
    finally:
        engine.dispose()
    by_article: dict[str, Counter[str]] = {}
    for article_id, version in rows:
        by_article.setdefault(article_id, Counter())[version] += 1
    return by_article


def _scalar(stack: Stack, query: object) -> int:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return int(session.scalar(query) or 0)  # type: ignore[call-overload]
    finally:
        engine.dispose()


@pytest.mark.heavy
def test_labels_retrain_and_hot_swap_without_loss(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path, tmp_path: Path
) -> None:
    stack.overrides.update(
        classifier="model",
        model_refresh_s=1.0,
        instruction_refresh_s=1.0,
        retrain_base_recipe="",
        retrain_mode="heads",
        holdout_share=0.3,
    )
    settings = stack.settings()
    posts = data_dir / "tfns_sentiment" / "train.csv"
    first = _ingest(stack, posts, 40)
    worker = workers()
    wait_stored(stack, first, timeout=180)

    # Annotation queue: the least certain items, exported in the import format.
    queue_path = tmp_path / "queue.jsonl"
    stack.finsent("labels", "queue", "--instruction", "sentiment", "--n", "5", "--output", str(queue_path))
    queued = [json.loads(line) for line in queue_path.read_text().splitlines()]
    assert len(queued) == 5 and len({q["article_id"] for q in queued}) == 5
    assert all(q["instruction"] == "sentiment" and q["why"] for q in queued)
    for entry in queued:
        entry["label"] = "neutral"
    queue_path.write_text("".join(json.dumps(e) + "\n" for e in queued))
    imported = stack.finsent("labels", "import", str(queue_path), "--annotator", "analyst")
    assert json.loads(imported.stdout.splitlines()[-1]) == {"stored": 5, "rejected": 0}
    again = stack.finsent("labels", "queue", "--instruction", "sentiment", "--n", "40")
    assert not {q["article_id"] for q in queued} & {
        json.loads(x)["article_id"] for x in again.stdout.splitlines()
    }

    # Labels over Kafka, three of them bad: those are dead-lettered with their reason.
    examples, _ = sentiment_slice(data_dir, train_n=450, test_n=0)
    producer = raw_producer(stack.kafka)
    for example in examples:
        record = {
            "text": example.text,
            "instruction": "sentiment",
            "label": example.label,
            "annotator": "feed",
        }
        producer.send(settings.topic_labels, json.dumps(record).encode())
    producer.send(settings.topic_labels, b"{not json")
    producer.send(
        settings.topic_labels, json.dumps({"text": "x", "instruction": "mood", "label": "up"}).encode()
    )
    producer.send(
        settings.topic_labels, json.dumps({"text": "x", "instruction": "sentiment", "label": "up"}).encode()
    )
    producer.flush()
    producer.close()
    expected_labels = 5 + len({text_hash(e.text) for e in examples})  # one row per text per annotator
    wait_for(
        lambda: _scalar(stack, select(func.count()).select_from(Label)) >= expected_labels, 120, "labels"
    )
    wait_for(lambda: counts(stack)["dlq_records"] == 3, 60, "3 dead-lettered labels")
    codes = {
        code: _scalar(
            stack, select(func.count()).select_from(DeadLetter).where(DeadLetter.reason_code == code)
        )
        for code in ("invalid_json", "invalid_label")
    }
    assert codes == {"invalid_json": 1, "invalid_label": 2}

    # New items keep flowing while the retrain job promotes a model.
    second = _ingest(stack, data_dir / "tfn_topic" / "train.csv", 300)
    outcome = json.loads(stack.finsent("retrain", timeout=600).stdout.splitlines()[-1])
    assert outcome["status"] == "promoted", outcome
    assert outcome["compared_with"] == "base:minilm"
    assert outcome["heads"] == {"sentiment": "candidate"}  # topic had no labels: still zero-shot
    new_version = outcome["version"]
    time.sleep(2.5)  # > model_refresh_s
    third = _ingest(stack, posts, 80)  # 40 of these are new
    final = wait_stored(stack, first + second + third + 3, timeout=300)
    assert final["articles"] == first + second + third
    by_article = _versions_by_article(stack)
    assert len(by_article) == final["articles"]
    # Exactly one model version per article, two predictions each: nothing processed twice.
    assert all(len(c) == 1 and sum(c.values()) == 2 for c in by_article.values())
    assert {v for c in by_article.values() for v in c} <= {"base:minilm", new_version}
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        latest = session.scalars(select(Article.id).order_by(Article.ingested_at.desc()).limit(third)).all()
    # Across the swap, the views' current answers are each article's latest, by a recount.
    assert assert_current_is_latest(engine) >= 2 * final["articles"]
    assert assert_series_views_are_exact(engine) > 0  # the rollups too, across the swap
    engine.dispose()
    assert all(set(by_article[a]) == {new_version} for a in latest)
    assert worker.alive()

    # `finsent backfill` re-labels the articles the old model answered with the promoted one
    # (the scheduler's backfill job does the same for the alert horizon); the old answers stay.
    old_answered = sum(1 for c in by_article.values() if "base:minilm" in c)
    assert old_answered > 0
    done = json.loads(stack.finsent("backfill", "--since", "36500d", timeout=600).stdout.splitlines()[-1])
    assert done["version"] == new_version and done["finished"], done
    assert done["classified"] == done["due_at_start"] == old_answered, done
    after = _versions_by_article(stack)
    assert all(c[new_version] == 2 for c in after.values())
    assert sum(c["base:minilm"] for c in after.values()) == 2 * old_answered
    engine = make_engine(stack.database_url)
    assert count_due(engine, datetime(1970, 1, 1, tzinfo=UTC), new_version) == 0
    assert assert_current_is_latest(engine) >= 2 * final["articles"]
    assert_series_views_are_exact(engine)
    engine.dispose()
