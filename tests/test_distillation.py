"""Distillation: a student taught by a teacher's soft labels on unlabelled text agrees with the
teacher far more often than the same student trained on the few gold labels alone, keeps the
teacher's label set, and never learns from the validation rows it is scored on."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from models.datasets import DataError, Example
from models.distillation import Teacher, agreement, soft_examples
from models.encoder import load_encoder
from models.instructions import Instruction, InstructionSet, builtin
from models.training import TrainConfig, Trainer
from tests.model_helpers import sentiment_slice

HEADS = TrainConfig(mode="heads", heads_epochs=40, val_fraction=0.15, progress=False, seed=5)


@pytest.mark.heavy
def test_a_distilled_student_agrees_with_its_teacher_more_than_a_plain_student(data_dir: Path) -> None:
    pool, held = sentiment_slice(data_dir, train_n=2400, test_n=400)
    random.Random(0).shuffle(pool)
    sentiment = InstructionSet.of([builtin().get("sentiment")])
    tokenizer, encoder = load_encoder("minilm")
    teacher_result = Trainer(encoder, tokenizer, sentiment, HEADS).fit(pool)
    teacher = Teacher(teacher_result.model, tokenizer, max_length=64)

    gold, rest = pool[:150], pool[150:]
    unlabelled = [e.text for e in rest]
    plain = Trainer(load_encoder("minilm")[1], tokenizer, sentiment, HEADS).fit(gold)
    distilled = Trainer(load_encoder("minilm")[1], tokenizer, sentiment, HEADS).fit(
        gold, teacher=teacher, unlabelled=unlabelled
    )

    assert distilled.model.head_labels == teacher_result.model.head_labels
    assert distilled.counts["distillation"]["unlabelled"] >= len(set(unlabelled)) * 0.95
    assert distilled.counts["distillation"]["labelled"] == distilled.counts["train"]["sentiment"]
    report = distilled.distillation
    assert report is not None and set(report["agreement"]) == {"sentiment"}
    assert report["teacher_validation"]["sentiment"]["n"] == distilled.counts["validation"]["sentiment"]

    def agree(student: Trainer | object) -> float:
        model = student.model  # type: ignore[attr-defined]
        return agreement(teacher.logits(held), Teacher(model, tokenizer, max_length=64).logits(held))[
            "sentiment"
        ]

    plain_agreement, distilled_agreement = agree(plain), agree(distilled)
    assert distilled_agreement > plain_agreement + 0.03, (distilled_agreement, plain_agreement)
    assert distilled_agreement > 0.85, distilled_agreement


def test_validation_texts_teach_nothing_and_entity_rows_read_entity_heads(data_dir: Path) -> None:
    sentiment = builtin().get("sentiment")
    assert sentiment.per_entity
    tokenizer, encoder = load_encoder("minilm")
    rows = [
        Example("Acme beats estimates, Globex slumps", "sentiment", "positive", entity="Acme"),
        Example("Acme beats estimates, Globex slumps", "sentiment", "negative", entity="Globex"),
        Example("Shares rose after the results", "sentiment", "positive"),
    ]
    trainer = Trainer(encoder, tokenizer, InstructionSet.of([sentiment]), replace(HEADS, heads_epochs=2))
    trainer._add_entity_heads({"sentiment"})
    teacher = Teacher(trainer.model, tokenizer)
    soft = soft_examples(
        teacher,
        rows,
        unlabelled=["Markets were calm", "markets  were CALM", "The validation headline"],
        entity_texts=[("Initech recalls its product", "Initech")],
        exclude=["the validation headline"],
    )
    texts = [(r.text, r.entity) for r in soft]
    assert ("The validation headline", None) not in texts
    assert texts.count(("Markets were calm", None)) == 1  # the same text after preparation, once
    by_key = {(r.text, r.entity): r for r in soft}
    assert set(by_key[("Acme beats estimates, Globex slumps", "Globex")].teacher) == {"sentiment@entity"}
    assert by_key[("Acme beats estimates, Globex slumps", "Globex")].gold == {"sentiment@entity": "negative"}
    assert set(by_key[("Shares rose after the results", None)].teacher) == {"sentiment"}
    assert by_key[("Initech recalls its product", "Initech")].gold == {}
    assert all(len(v) == 3 for r in soft for v in r.teacher.values())


def test_a_teacher_with_other_labels_is_refused(data_dir: Path) -> None:
    tokenizer, encoder = load_encoder("minilm")
    sentiment = builtin().get("sentiment")
    teacher_model = Trainer(encoder, tokenizer, InstructionSet.of([sentiment]), HEADS).model
    edited = Instruction.from_dict(
        {**sentiment.to_dict(), "labels": {"bullish": "good news", "bearish": "bad news"}}
    )
    student = Trainer(load_encoder("minilm")[1], tokenizer, InstructionSet.of([edited]), HEADS)
    with pytest.raises(DataError, match="teacher's labels"):
        student.fit(
            [Example("Shares rose", "sentiment", "bullish")] * 3,
            teacher=Teacher(teacher_model, tokenizer),
        )


def test_unlabelled_texts_come_from_files_and_stored_articles(tmp_path: Path, sqlite_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from connectors.db.engine import make_engine
    from connectors.db.texts import recent_article_texts
    from connectors.db.writer import ArticleRow, write_batch
    from models.datasets import read_texts

    engine = make_engine(sqlite_url)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    write_batch(
        engine,
        [
            ArticleRow(
                id=f"a{i}",
                source="t",
                url=None,
                title=f"Headline {i}",
                body="Body text" if i else "",
                published_at=at + timedelta(hours=i),
                fetched_at=at,
                lang="en",
                tickers=[],
                predictions=[],
                entity_predictions=[],
            )
            for i in range(3)
        ],
    )
    texts = recent_article_texts(engine, 10)
    assert sorted(texts) == ["Headline 0", "Headline 1. Body text", "Headline 2. Body text"]
    assert len(recent_article_texts(engine, 2)) == 2 and recent_article_texts(engine, 0) == []

    (tmp_path / "lines.txt").write_text("first line\n\n second line \n")
    (tmp_path / "replay.jsonl").write_text(
        '{"title": "Acme wins", "body": "A contract."}\n{"title": "Globex"}\n'
    )
    assert read_texts(tmp_path / "lines.txt") == ["first line", "second line"]
    assert read_texts(tmp_path / "replay.jsonl") == ["Acme wins. A contract.", "Globex"]
    (tmp_path / "bad.jsonl").write_text('{"headline": "no text field"}\n')
    with pytest.raises(DataError, match="neither 'text' nor 'title'"):
        read_texts(tmp_path / "bad.jsonl")
