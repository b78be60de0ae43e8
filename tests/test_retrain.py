"""Labels in, better model out: label import, the fixed holdout, the retrain job's gate."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from connectors.db.label_store import LabelRow, read_labels, upsert_labels
from connectors.db.schema import Label, ModelVersion
from models import head_store
from models.fewshot import LinearHead
from models.instructions import InstructionSet
from models.labels import is_holdout, text_hash
from models.registry import ModelRegistry
from pipeline.jobs.retrain import run_retrain
from pipeline.settings import Settings
from tests.conftest import FINSENT
from tests.model_helpers import sentiment_slice

pytestmark = [pytest.mark.postgres]


def _settings(url: str, home: Path) -> Settings:
    return Settings(
        home=home, database_url=url, retrain_base_recipe="", retrain_mode="heads", holdout_share=0.3
    )


def test_holdout_is_fixed_by_text_and_about_the_configured_share() -> None:
    hashes = [text_hash(f"headline number {i}") for i in range(4000)]
    held = [h for h in hashes if is_holdout(h, 0.2)]
    assert 0.17 < len(held) / len(hashes) < 0.23
    assert held == [h for h in hashes if is_holdout(h, 0.2)]  # same texts, same side, every time
    assert text_hash("Fed  holds rates https://t.co/x") == text_hash("fed holds rates")


def test_label_import_stores_good_rows_and_reports_bad_ones(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "article_id", "instruction", "label", "annotator"])
        writer.writerow(["Acme beats estimates", "", "sentiment", "positive", "ann"])  # line 2: good
        writer.writerow(["Acme misses", "", "mood", "negative", "ann"])  # 3: unknown instruction
        writer.writerow(["Acme flat", "", "sentiment", "sideways", "ann"])  # 4: label outside the set
        writer.writerow(["", "no-such-article", "sentiment", "neutral", "ann"])  # 5: unknown article
        writer.writerow(["", "", "sentiment", "neutral", "ann"])  # 6: no text, no id
        writer.writerow(["Acme CEO resigns", "", "topic", "Personnel Change", ""])  # 7: good
        writer.writerow(["Acme to merge", "", "topic", "", "ann"])  # 8: no label
    env = {**os.environ, "FINSENT_DATABASE_URL": pg_url, "FINSENT_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [FINSENT, "labels", "import", str(path), "--annotator", "desk"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"stored": 2, "rejected": 5}
    for line, reason in [
        (3, "unknown instruction 'mood'"),
        (4, "label 'sideways' is not one of sentiment's labels"),
        (5, "unknown article 'no-such-article'"),
        (6, "neither text nor article_id"),
        (8, "no label"),
    ]:
        assert f"labels.csv:{line}: rejected: {reason}" in result.stderr
    from connectors.db.engine import make_engine

    stored = read_labels(make_engine(pg_url))
    assert {(r.text, r.label, r.annotator) for r in stored} == {
        ("Acme beats estimates", "positive", "ann"),
        ("Acme CEO resigns", "Personnel Change", "desk"),
    }
    assert all(r.provenance == "import:labels.csv" for r in stored)


def _labels(examples: list, annotator: str) -> list[LabelRow]:
    return [LabelRow(e.text, text_hash(e.text), e.instruction, e.label, annotator, "test") for e in examples]


@pytest.mark.heavy
def test_better_candidate_promoted_shuffled_candidate_rejected(
    pg_engine: Engine, pg_url: str, tmp_path: Path, data_dir: Path
) -> None:
    settings = _settings(pg_url, tmp_path / "home")
    examples, _ = sentiment_slice(data_dir, train_n=700, test_n=0)
    upsert_labels(pg_engine, _labels(examples, "desk"))

    first = run_retrain(settings, pg_engine)
    assert first.status == "promoted", first.reason
    assert first.active_version == "base:minilm"  # nothing was active: compared with zero-shot
    registry = ModelRegistry(settings.models_dir, pg_engine)
    assert registry.active_version() == first.version
    assert first.candidate["sentiment"]["macro_f1"] > first.active["sentiment"]["macro_f1"]

    # Replace every training label (not the holdout) by a shuffled one: the candidate gets worse.
    rows = read_labels(pg_engine)
    train_rows = [r for r in rows if not is_holdout(r.text_hash, settings.holdout_share)]
    shuffled = [r.label for r in train_rows]
    random.Random(5).shuffle(shuffled)
    with Session(pg_engine) as session, session.begin():
        session.execute(delete(Label).where(Label.text_hash.in_([r.text_hash for r in train_rows])))
    upsert_labels(
        pg_engine,
        [
            LabelRow(r.text, r.text_hash, r.instruction, label, "shuffler", "test")
            for r, label in zip(train_rows, shuffled, strict=True)
        ],
    )
    second = run_retrain(settings, pg_engine)
    assert second.status == "rejected", second.reason
    assert second.active_version == first.version
    assert registry.active_version() == first.version  # the active model stays
    with Session(pg_engine) as session:
        row = session.get(ModelVersion, second.version)
        assert row is not None and row.status == "rejected"
        assert row.decision_reason == second.reason and row.metrics["holdout"]["candidate"]
        assert row.metrics["per_instruction"]["sentiment"]["better"] is False
        assert "per instruction: sentiment not better" in row.decision_reason
        statuses = dict(session.execute(select(ModelVersion.version, ModelVersion.status)).all())
    assert statuses == {first.version: "active", second.version: "rejected"}


def _rotated(rows: list[LabelRow], labels: list[str], holdout_share: float) -> list[LabelRow]:
    """The training rows' labels moved one place along the label set (the holdout keeps the truth):
    a head fitted on them is reliably worse than anything that answers the question."""
    turn = {label: labels[(i + 1) % len(labels)] for i, label in enumerate(labels)}
    return [
        r
        if is_holdout(r.text_hash, holdout_share)
        else LabelRow(r.text, r.text_hash, r.instruction, turn[r.label], r.annotator, r.provenance)
        for r in rows
    ]


def _replace_labels(engine: Engine, rows: list[LabelRow]) -> None:
    with Session(engine) as session, session.begin():
        session.execute(delete(Label))
    upsert_labels(engine, rows)


def _heads(folder: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "heads.safetensors"))


@pytest.mark.heavy
def test_retrain_promotes_instruction_by_instruction(
    pg_engine: Engine, pg_url: str, tmp_path: Path, data_dir: Path
) -> None:
    from models.instructions import builtin
    from models.recipes import tfn_topic

    settings = _settings(pg_url, tmp_path / "home")
    share = settings.holdout_share
    instructions = builtin()
    sentiment_labels = instructions.get("sentiment").label_names
    topic_labels = instructions.get("topic").label_names
    sentiment_examples, _ = sentiment_slice(data_dir, train_n=500, test_n=0)
    seen: set[str] = set()
    topic_examples = [
        e for e in tfn_topic(data_dir, instructions) if not (e.text in seen or seen.add(e.text))
    ][:700]  # type: ignore[func-returns-value]
    sentiment_rows = _labels(sentiment_examples, "desk")
    topic_rows = _labels(topic_examples, "desk")
    registry = ModelRegistry(settings.models_dir, pg_engine)

    # Round 1: sentiment's training labels are wrong, topic's right. Topic's head is promoted;
    # sentiment keeps what answered it (zero-shot: the new version has no sentiment head).
    _replace_labels(pg_engine, _rotated(sentiment_rows, sentiment_labels, share) + topic_rows)
    first = run_retrain(settings, pg_engine)
    assert first.status == "partially promoted", first.reason
    assert first.heads == {"sentiment": "kept", "topic": "candidate"}
    assert registry.active_version() == first.version
    first_heads = _heads(str(registry.path_of(first.version)))
    assert set(first_heads) == {"topic.weight", "topic.bias"}

    # Round 2: now topic's training labels are wrong and sentiment's right. Sentiment's head is
    # promoted, topic keeps round 1's head unchanged, in a new version on the same encoder; the
    # taught head that answered topic on round 1's version answers it on the new one too.
    taught = LinearHead(tuple(topic_labels), first_heads["topic.weight"] * 20, first_heads["topic.bias"])
    head_store.record(pg_engine, "topic", first.version, taught, "active", "taught by hand", {}, 40)
    _replace_labels(pg_engine, sentiment_rows + _rotated(topic_rows, topic_labels, share))
    second = run_retrain(settings, pg_engine)
    assert second.status == "partially promoted", second.reason
    assert second.heads == {"sentiment": "candidate", "topic": "kept"}
    assert second.active_version == first.version
    assert registry.active_version() == second.version
    second_heads = _heads(str(registry.path_of(second.version)))
    assert set(second_heads) == {"topic.weight", "topic.bias", "sentiment.weight", "sentiment.bias"}
    for key in ("topic.weight", "topic.bias"):
        assert torch.equal(second_heads[key], first_heads[key])
    with Session(pg_engine) as session:
        row = session.get(ModelVersion, second.version)
        assert row is not None and row.status == "active"
        assert row.metrics["heads"] == {"sentiment": "candidate", "topic": "kept"}
        assert row.metrics["per_instruction"]["sentiment"]["better"] is True
        assert row.metrics["per_instruction"]["topic"]["better"] is False
        assert "kept what answers topic" in row.decision_reason
        assert row.metrics["encoder_from"] == first.version
    carried = head_store.active_heads(pg_engine, second.version)
    assert set(carried) == {"topic"} and torch.equal(carried["topic"].weight, taught.weight)
    assert head_store.active_record(pg_engine, "topic", second.version).decision_reason.startswith(  # type: ignore[union-attr]
        f"carried over from {first.version}"
    )
    # The kept head answers exactly as before on the holdout.
    assert second.candidate["sentiment"]["macro_f1"] > second.active["sentiment"]["macro_f1"]
    held = [r for r in topic_rows if is_holdout(r.text_hash, share)]
    before = registry.load(first.version).classify(
        [r.text for r in held], InstructionSet.of([instructions.get("topic")])
    )
    after = registry.load(second.version).classify(
        [r.text for r in held], InstructionSet.of([instructions.get("topic")])
    )
    assert [b["topic"].label for b in before] == [a["topic"].label for a in after]


def test_decide_takes_each_instruction_from_where_it_is_better() -> None:
    from models.evaluation import classification_report
    from models.retrain import RetrainConfig, decide

    config = RetrainConfig(Path("."), Path("."), Path("."), min_macro_f1_gain=0.01, max_recall_drop=0.1)
    truth = ["a"] * 10 + ["b"] * 10
    weak = classification_report(truth, ["a"] * 10 + ["b"] * 5 + ["a"] * 5, ["a", "b"])
    strong = classification_report(truth, ["a"] * 10 + ["b"] * 8 + ["a"] * 2, ["a", "b"])
    candidate, active = {"x": strong, "y": weak}, {"x": weak, "y": strong}
    # x won, y lost; z has no holdout labels: the incumbent's head stays; w only the candidate has.
    mixed = decide(candidate, active, {"x", "y", "z", "w"}, {"x", "y", "z"}, config, mixable=True)
    assert mixed.promote and mixed.status == "partially promoted"
    assert mixed.heads == {"w": "candidate", "x": "candidate", "y": "kept", "z": "kept"}
    assert "y not better" in mixed.reason and "x better" in mixed.reason
    # Nothing won: nothing changes.
    lost = decide(active, {"x": strong, "y": strong}, {"x", "y"}, {"x", "y"}, config, mixable=True)
    assert not lost.promote and lost.status == "rejected" and set(lost.heads.values()) == {"kept"}
    # A new encoder moves every instruction at once: judged as a whole (mean gain 0 here).
    whole = decide(candidate, active, {"x", "y"}, {"x", "y"}, config, mixable=False)
    assert not whole.promote and "judged as a whole" in whole.reason
    both = decide({"x": strong, "y": strong}, active, {"x", "y"}, {"x", "y"}, config, mixable=False)
    assert both.promote and both.status == "promoted"
    assert not decide({}, {}, {"x"}, set(), config, mixable=True).promote


def test_retrain_without_holdout_labels_is_skipped(pg_engine: Engine, pg_url: str, tmp_path: Path) -> None:
    outcome = run_retrain(_settings(pg_url, tmp_path / "home"), pg_engine)
    assert outcome.status == "skipped" and "no holdout labels" in outcome.reason


def test_gate_rules() -> None:
    from models.evaluation import classification_report
    from models.retrain import RetrainConfig, gate

    config = RetrainConfig(Path("."), Path("."), Path("."), min_macro_f1_gain=0.01, max_recall_drop=0.1)
    truth = ["a"] * 10 + ["b"] * 10
    active = {"x": classification_report(truth, ["a"] * 10 + ["b"] * 5 + ["a"] * 5, ["a", "b"])}
    better = {"x": classification_report(truth, ["a"] * 10 + ["b"] * 8 + ["a"] * 2, ["a", "b"])}
    assert gate(better, active, config)[0]
    assert not gate(active, active, config)[0]  # no gain
    # Better macro-F1 overall, but recall of `a` falls from 1.0 to 0.8.
    trade = {"x": classification_report(truth, ["a"] * 8 + ["b"] * 2 + ["b"] * 10, ["a", "b"])}
    promoted, reason = gate(trade, active, config)
    assert not promoted and "recall of x=a falls by 0.200" in reason
    assert gate(trade, active, config, guarded=set())[0]  # x was answered zero-shot
    assert not gate(better, {}, config)[0]

    from models.retrain import per_instruction

    verdicts = per_instruction({**better, "y": active["x"]}, {"x": active["x"], "y": better["x"]}, config)
    assert verdicts["x"]["better"] and not verdicts["y"]["better"]
    assert verdicts["x"]["macro_f1_gain"] == -verdicts["y"]["macro_f1_gain"] > 0
