"""The real executor inside a running worker: both built-in instructions on every item, an
instruction added at runtime is executed from the next batch on, and an instruction taught at
runtime is answered by its taught head from the next batch on, with no restart."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article, Prediction
from tests.conftest import Stack, WorkerProcess, wait_stored
from tests.model_helpers import DIVIDEND, dividend_rows

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


@pytest.mark.heavy
def test_instruction_added_at_runtime_runs_on_the_next_batch(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path, tmp_path: Path
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

    # Teach a new instruction while the worker runs: the next batch is answered by the taught
    # head (not zero-shot), by the same process, with no model version change.
    labels = [f"--label={label}:{text}" for label, text in DIVIDEND["labels"].items()]  # type: ignore[attr-defined]
    stack.finsent("instructions", "add", "--name", "dividend", "--text", str(DIVIDEND["text"]), *labels)
    label_file = tmp_path / "dividend.jsonl"
    label_file.write_text(
        "".join(
            json.dumps({"text": text, "instruction": "dividend", "label": label}) + "\n"
            for text, label in dividend_rows(data_dir, 16)
        )
    )
    taught = json.loads(
        stack.finsent("instructions", "teach", "dividend", "--labels", str(label_file)).stdout.splitlines()[
            -1
        ]
    )
    assert taught["status"] == "promoted", taught
    seen = _article_ids(stack)
    time.sleep(2.5)  # > model_refresh_s and instruction_refresh_s
    third = json.loads(
        stack.finsent(
            "ingest", "--file", str(data_dir / "sentfin" / "train.csv"), "--limit", "30"
        ).stdout.splitlines()[-1]
    )
    wait_stored(stack, first["produced"] + second["produced"] + third["produced"], timeout=180)
    assert worker.alive() and worker.proc.pid == pid
    newest = _article_ids(stack) - seen
    dividend = [p for p in _predictions(stack) if p.instruction == "dividend"]
    assert {p.article_id for p in dividend} == newest
    assert not any(p.zero_shot for p in dividend) and {p.model_version for p in dividend} == {"base:minilm"}
