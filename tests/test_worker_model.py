"""The real executor inside a running worker: both built-in instructions on every item, and an
instruction added at runtime is executed from the next batch on, with no restart."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article, Prediction
from tests.conftest import Stack, WorkerProcess, wait_stored

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _predictions(stack: Stack) -> list[Prediction]:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(Prediction)))
    finally:
        engine.dispose()


def _article_ids(stack: Stack) -> set[str]:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return set(session.scalars(select(Article.id)))
    finally:
        engine.dispose()


def test_instruction_added_at_runtime_runs_on_the_next_batch(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path
) -> None:
    stack.overrides.update(classifier="model", instruction_refresh_s=1.0, model_refresh_s=1.0)
    first = json.loads(
        stack.finsent(
            "ingest", "--file", str(data_dir / "tfn_topic" / "train.csv"), "--limit", "30"
        ).stdout.splitlines()[-1]
    )
    worker = workers()
    wait_stored(stack, first["produced"], timeout=180)
    before = _predictions(stack)
    assert Counter(p.instruction for p in before) == {
        "sentiment": first["produced"],
        "topic": first["produced"],
    }
    assert {p.model_version for p in before} == {"base:minilm"}
    assert all(p.zero_shot for p in before)  # nothing trained in this database: zero-shot
    old_ids = _article_ids(stack)

    stack.finsent(
        "instructions", "add", "--name", "guidance", "--text", "Does this item change a company's outlook?",
        "--label", "raised:outlook or guidance raised", "--label", "cut:outlook or guidance cut",
        "--label", "none:no outlook change",
    )  # fmt: skip
    pid = worker.proc.pid
    import time

    time.sleep(2.5)  # > instruction_refresh_s: the next batch sees the new set
    second = json.loads(
        stack.finsent(
            "ingest", "--file", str(data_dir / "tfns_sentiment" / "train.csv"), "--limit", "30"
        ).stdout.splitlines()[-1]
    )
    wait_stored(stack, first["produced"] + second["produced"], timeout=180)
    assert worker.alive() and worker.proc.pid == pid
    new_ids = _article_ids(stack) - old_ids
    assert len(new_ids) == second["produced"]
    guidance = [p for p in _predictions(stack) if p.instruction == "guidance"]
    assert {p.article_id for p in guidance} == new_ids
    assert {p.label for p in guidance} <= {"raised", "cut", "none"}
    assert all(p.zero_shot for p in guidance)
