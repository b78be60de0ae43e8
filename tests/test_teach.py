"""`finsent instructions teach` and `finsent labels queue` end to end on SQLite with the real
encoder, on a stand-in question (is this post about a dividend?) that nothing shipped was
trained on: a taught head beats zero-shot on items it never saw and is promoted without touching
another instruction's head; noise is rejected; too few labels change nothing; the queue offers
unlabelled articles of the right instruction."""

from __future__ import annotations

import json
import os
import random
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article, InstructionHead, Label
from models import head_store
from models.evaluation import classification_report
from models.instructions import Instruction
from models.registry import base_executor
from tests.conftest import FINSENT
from tests.model_helpers import DIVIDEND, dividend_rows


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINSENT, "--text-logs", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _env(tmp_path: Path, sqlite_url: str, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "FINSENT_HOME": str(tmp_path / "home"),
        "FINSENT_DATABASE_URL": sqlite_url,
        "FINSENT_DATA_DIR": str(data_dir),
    }
    return env


def _add(env: dict[str, str], name: str) -> None:
    labels = [f"--label={label}:{text}" for label, text in DIVIDEND["labels"].items()]  # type: ignore[attr-defined]
    result = _run(env, "instructions", "add", "--name", name, "--text", str(DIVIDEND["text"]), *labels)
    assert result.returncode == 0, result.stderr


def _label_file(path: Path, name: str, rows: list[tuple[str, str]], extra: list[dict[str, str]] = ()) -> Path:  # type: ignore[assignment]
    lines = [json.dumps({"text": text, "instruction": name, "label": label}) for text, label in rows]
    lines += [json.dumps(e) for e in extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def _heads(url: str) -> dict[int, tuple[str, str, str]]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {
                r.id: (r.instruction, r.status, json.dumps(r.head, sort_keys=True))
                for r in session.scalars(select(InstructionHead))
            }
    finally:
        engine.dispose()


def _macro_f1(predicted: list[str], truth: list[str]) -> float:
    return float(classification_report(truth, predicted, ["yes", "no"])["macro_f1"])


@pytest.mark.heavy
def test_teach_promotes_a_better_head_and_leaves_the_others_byte_identical(
    tmp_path: Path, sqlite_url: str, data_dir: Path
) -> None:
    env = _env(tmp_path, sqlite_url, data_dir)
    _add(env, "dividend")
    _add(env, "payout")  # the same question under another name: its head must not move
    payout_labels = _label_file(tmp_path / "payout.jsonl", "payout", dividend_rows(data_dir, 16, skip=200))
    first = _run(env, "instructions", "teach", "payout", "--labels", str(payout_labels))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["status"] == "promoted"
    before = _heads(sqlite_url)

    labels = _label_file(
        tmp_path / "dividend.jsonl",
        "dividend",
        dividend_rows(data_dir, 32),
        [
            {"text": "x", "instruction": "dividend", "label": "maybe"},
            {"text": "x", "instruction": "no_such_question", "label": "yes"},
        ],
    )
    result = _run(env, "instructions", "teach", "dividend", "--labels", str(labels))
    assert result.returncode == 0, result.stderr
    assert f"{labels}:65: rejected: label 'maybe' is not one of dividend's labels" in result.stderr
    assert f"{labels}:66: rejected: unknown instruction 'no_such_question'" in result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["status"] == "promoted" and outcome["labels"] == {"yes": 32, "no": 32}
    assert outcome["compared_with"] == "zero-shot" and outcome["interval"][0] > 0
    assert "better with 95% confidence" in outcome["reason"]

    after = _heads(sqlite_url)
    assert {i: after[i] for i in before} == before  # payout's row, byte for byte
    new = [v for i, v in after.items() if i not in before]
    assert [(name, status) for name, status, _ in new] == [("dividend", "active")]

    # On posts none of the labels came from, the taught head beats zero-shot clearly.
    held = dividend_rows(data_dir, 60, skip=100)
    instruction = Instruction("dividend", str(DIVIDEND["text"]), dict(DIVIDEND["labels"]))  # type: ignore[call-overload]
    executor = base_executor("minilm")
    pooled = executor.embed([t for t, _ in held])
    truth = [label for _, label in held]
    zero_probs, zero_shot = executor.probabilities(pooled, instruction)
    assert zero_shot
    engine = make_engine(sqlite_url)
    head_store.install_active(engine, executor)
    engine.dispose()
    taught_probs, taught_zero_shot = executor.probabilities(pooled, instruction)
    assert not taught_zero_shot
    names = instruction.label_names
    zero_f1 = _macro_f1([names[i] for i in zero_probs.argmax(1).tolist()], truth)
    taught_f1 = _macro_f1([names[i] for i in taught_probs.argmax(1).tolist()], truth)
    assert taught_f1 > zero_f1 + 0.2 and taught_f1 > 0.85, (zero_f1, taught_f1)

    decisions = _run(env, "instructions", "decisions", "dividend")
    assert decisions.returncode == 0 and "active" in decisions.stdout and "promoted:" in decisions.stdout


@pytest.mark.heavy
def test_teach_rejects_noise_and_refuses_too_few_labels(
    tmp_path: Path, sqlite_url: str, data_dir: Path
) -> None:
    env = _env(tmp_path, sqlite_url, data_dir)
    _add(env, "dividend")
    few = _label_file(tmp_path / "few.jsonl", "dividend", dividend_rows(data_dir, 3))
    refused = _run(env, "instructions", "teach", "dividend", "--labels", str(few))
    assert refused.returncode == 1
    assert (
        "every label needs at least 4" in refused.stderr and "add 1 more 'yes', 1 more 'no'" in refused.stderr
    )
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Label)) == 0  # nothing stored
    assert _heads(sqlite_url) == {}

    rows = dividend_rows(data_dir, 16)
    shuffled = [label for _, label in rows]
    random.Random(3).shuffle(shuffled)  # labels that say nothing about the texts
    noise = _label_file(
        tmp_path / "noise.jsonl", "dividend", [(t, y) for (t, _), y in zip(rows, shuffled, strict=True)]
    )
    result = _run(env, "instructions", "teach", "dividend", "--labels", str(noise))
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["status"] == "rejected" and "not shown to be better" in outcome["reason"]
    assert [status for _, status, _ in _heads(sqlite_url).values()] == ["rejected"]

    # The queue proposes stored articles nobody labelled for this instruction.
    now = datetime.now(UTC)
    texts = [t for t, _ in dividend_rows(data_dir, 20, skip=300)]
    with Session(engine) as session, session.begin():
        for i, text in enumerate(texts):
            session.add(
                Article(
                    id=f"a{i}", source="test", url=None, title=text, body="", published_at=now, fetched_at=now
                )
            )
    engine.dispose()
    labelled_one = _label_file(tmp_path / "one.jsonl", "dividend", [])
    labelled_one.write_text(json.dumps({"article_id": "a0", "instruction": "dividend", "label": "no"}) + "\n")
    assert _run(env, "labels", "import", str(labelled_one)).returncode == 0
    queue = _run(env, "labels", "queue", "--instruction", "dividend", "--n", "5")
    assert queue.returncode == 0, queue.stderr
    entries = [json.loads(line) for line in queue.stdout.splitlines()]
    assert len(entries) == 5 and len({e["article_id"] for e in entries}) == 5
    assert {e["article_id"] for e in entries} <= {f"a{i}" for i in range(1, len(texts))}
    assert all(e["instruction"] == "dividend" and e["label"] == "" and e["why"] for e in entries)
    unknown = _run(env, "labels", "queue", "--instruction", "nope", "--n", "5")
    assert unknown.returncode == 1 and "no instruction named 'nope'" in unknown.stderr


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
