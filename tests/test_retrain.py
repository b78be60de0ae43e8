"""Labels in, better model out: label import, the fixed holdout, the retrain job's gate."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from connectors.db.label_store import LabelRow, read_labels, upsert_labels
from connectors.db.schema import Label, ModelVersion
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
    assert gate(trade, active, config, guard_recall=False)[0]
    assert not gate(better, {}, config)[0]

    from models.retrain import per_instruction

    verdicts = per_instruction({**better, "y": active["x"]}, {"x": active["x"], "y": better["x"]}, config)
    assert verdicts["x"]["better"] and not verdicts["y"]["better"]
    assert verdicts["x"]["macro_f1_gain"] == -verdicts["y"]["macro_f1_gain"] > 0
