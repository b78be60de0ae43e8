"""Training: beats zero-shot, reproducible, both modes, honest validation split, clear data errors."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from models.datasets import DataError, Example, load_examples, parse_label_map
from models.encoder import load_encoder
from models.evaluation import classification_report
from models.executor import ExecutorOptions, InstructionExecutor
from models.instructions import InstructionSet, builtin
from models.registry import base_executor
from models.schedule import LinearSchedule, affordable_total
from models.training import TrainConfig, Trainer, TrainResult, split
from tests.model_helpers import sentiment_slice

HEADS = TrainConfig(mode="heads", val_fraction=0.15, progress=False, seed=7)


def _train(examples: list[Example], config: TrainConfig) -> TrainResult:
    tokenizer, encoder = load_encoder("minilm")
    return Trainer(encoder, tokenizer, InstructionSet.of([builtin().get("sentiment")]), config).fit(examples)


def _accuracy(executor: InstructionExecutor, test: list[Example]) -> float:
    sentiment = InstructionSet.of([builtin().get("sentiment")])
    predicted = [r["sentiment"].label for r in executor.classify([e.text for e in test], sentiment)]
    return classification_report([e.label for e in test], predicted, ["negative", "neutral", "positive"])[
        "accuracy"
    ]


def test_training_a_small_slice_beats_zero_shot_on_held_out_rows(data_dir: Path) -> None:
    train, test = sentiment_slice(data_dir, train_n=600, test_n=300)
    result = _train(train, HEADS)
    tokenizer, _ = load_encoder("minilm")
    trained = InstructionExecutor(result.model, tokenizer, "trained", ExecutorOptions(device="cpu"))
    zero_shot = base_executor("minilm", ExecutorOptions(device="cpu"))
    trained_acc, zero_acc = _accuracy(trained, test), _accuracy(zero_shot, test)
    assert trained_acc > zero_acc + 0.05, (trained_acc, zero_acc)
    report = result.metrics["sentiment"]
    assert set(report) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert (
        sum(map(sum, report["confusion_matrix"])) == report["n"] == result.counts["validation"]["sentiment"]
    )


def test_same_seed_same_model(data_dir: Path) -> None:
    train, _ = sentiment_slice(data_dir, train_n=200, test_n=0)
    first = _train(train, replace(HEADS, heads_epochs=5))
    second = _train(train, replace(HEADS, heads_epochs=5))
    for key, value in first.model.heads.state_dict().items():
        assert torch.equal(value, second.model.heads.state_dict()[key]), key
    assert first.data_fingerprint == second.data_fingerprint


def test_full_mode_multi_task_updates_the_encoder(data_dir: Path) -> None:
    """Two instructions in one run; the encoder's weights move (they are frozen in `heads` mode)."""
    sentiment, _ = sentiment_slice(data_dir, train_n=48, test_n=0)
    topics = [Example(e.text, "topic", "Markets" if i % 2 else "Earnings") for i, e in enumerate(sentiment)]
    tokenizer, encoder = load_encoder("minilm")
    before = encoder.encoder.layer[-1].output.dense.weight.detach().clone()
    config = TrainConfig(
        mode="full", epochs=1, batch_size=16, val_fraction=0.2, progress=False, freeze_layers=4
    )
    result = Trainer(encoder, tokenizer, builtin(), config).fit(sentiment + topics)
    assert set(result.metrics) == {"sentiment", "topic"}
    assert not torch.equal(before, result.model.encoder.encoder.layer[-1].output.dense.weight)
    frozen = result.model.encoder.encoder.layer[0].output.dense.weight
    assert not frozen.requires_grad
    assert result.history and result.history[0]["steps"] >= 1


def test_layer_wise_decay_slows_the_lower_layers_and_misses_no_parameter() -> None:
    tokenizer, encoder = load_encoder("minilm")
    config = TrainConfig(mode="full", encoder_lr=1e-4, layer_lr_decay=0.5, freeze_layers=1, progress=False)
    trainer = Trainer(encoder, tokenizer, builtin(), config)
    groups = trainer._encoder_param_groups()
    layers = encoder.encoder.layer
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(rate_of)  # each parameter in one group
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert set(rate_of) == {id(p) for p in trainable}
    first_trained = next(iter(layers[1].parameters()))
    top = next(iter(layers[-1].parameters()))
    assert rate_of[id(top)] == pytest.approx(1e-4)
    assert rate_of[id(first_trained)] == pytest.approx(1e-4 * 0.5 ** (len(layers) - 2))
    assert id(next(iter(layers[0].parameters()))) not in rate_of  # frozen stays out
    with pytest.raises(ValueError, match="layer_lr_decay"):
        Trainer(encoder, tokenizer, builtin(), replace(config, layer_lr_decay=1.5))._encoder_param_groups()


def test_split_keeps_duplicates_on_one_side_and_stratifies() -> None:
    examples = [
        Example(f"text {i % 50}", "sentiment", ["negative", "neutral", "positive"][i % 3]) for i in range(300)
    ]
    train, val = split(examples, 0.2, seed=1)
    assert not {e.text for e in train} & {e.text for e in val}
    assert len(train) + len(val) == 50  # 300 rows, 50 distinct texts
    assert {e.label for e in val} == {"negative", "neutral", "positive"}


def test_label_maps_and_unknown_labels(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(
        '{"body": "up", "y": "bullish"}\n{"body": "down", "y": "bearish"}\n{"body": "?", "y": "meh"}\n'
    )
    sentiment = builtin().get("sentiment")
    mapping = parse_label_map("bullish=positive,bearish=negative")
    with pytest.raises(DataError, match="'meh'"):
        load_examples(path, sentiment, "body", "y", mapping)
    mapping["meh"] = "neutral"
    examples = load_examples(path, sentiment, "body", "y", mapping)
    assert [e.label for e in examples] == ["positive", "negative", "neutral"]
    with pytest.raises(DataError, match="SOURCE=TARGET"):
        parse_label_map("bullish")


def test_adding_a_data_set_leaves_the_other_validation_rows_unchanged() -> None:
    """Recipes that differ by one data set are validated on the same rows of the others."""
    posts = [
        Example(f"post {i}", "sentiment", ["negative", "neutral", "positive"][i % 3]) for i in range(300)
    ]
    entities = [Example(f"headline {i}", "sentiment", "positive", entity=f"Acme {i}") for i in range(100)]
    topics = [Example(f"topic {i}", "topic", ["Macro", "Earnings"][i % 2]) for i in range(200)]
    _, alone = split(posts + topics, 0.1, 13)
    _, together = split(posts + entities + topics, 0.1, 13)
    assert [e for e in together if e.entity is None] == alone
    assert len([e for e in together if e.entity is not None]) == 10


def test_the_decay_refitted_to_an_earlier_end_continues_from_the_rate_reached() -> None:
    planned = LinearSchedule(warmup=10, total=100)
    fitted = LinearSchedule(warmup=10, total=100)
    assert [fitted.multiplier(s) for s in range(60)] == [planned.multiplier(s) for s in range(60)]
    assert fitted.refit(60, 80)
    assert fitted.multiplier(60) == pytest.approx(planned.multiplier(60))  # no jump
    assert fitted.multiplier(70) == pytest.approx(planned.multiplier(60) / 2)
    assert fitted.multiplier(80) == 0.0 and planned.multiplier(80) > 0.2
    assert not fitted.refit(70, 90)  # never later than planned or fitted
    assert fitted.planned_total == 100 and fitted.total == 80


def test_the_affordable_total_leaves_room_for_the_validations_it_crosses() -> None:
    common = {"done": 100, "total": 300, "steps_per_epoch": 100, "seconds_per_step": 1.0}
    assert affordable_total(**common, validation_s=10.0, seconds_left=1000.0) == 300
    # 150 s * 0.95 = 142.5 s: to step 232 are 132 steps and the validations at 200 and 232 (142 s).
    assert affordable_total(**common, validation_s=5.0, seconds_left=150.0) == 232
    assert affordable_total(**common, validation_s=5.0, seconds_left=3.0) == 100  # stop now


def test_a_time_budget_shortens_the_schedule_instead_of_cutting_it(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every batch takes one second of the trainer's clock: the run measures that, ends its decay
    where the 40 s budget reaches, and finishes there, not by the budget's cut."""
    train, _ = sentiment_slice(data_dir, train_n=160, test_n=0)
    tokenizer, encoder = load_encoder("minilm")
    config = TrainConfig(
        mode="full",
        epochs=3,
        batch_size=8,
        max_length=32,
        freeze_layers=5,
        val_fraction=0.15,
        patience=5,
        progress=False,
        time_budget_s=40.0,
    )
    trainer = Trainer(encoder, tokenizer, InstructionSet.of([builtin().get("sentiment")]), config)
    now = [0.0]
    trainer.clock = lambda: now[0]
    tokenise = trainer._tokenise

    def one_second(rows: Any) -> dict[str, torch.Tensor]:
        now[0] += 1.0
        return tokenise(rows)

    trainer._tokenise = one_second  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="models.training"):
        result = trainer.fit(train)
    fitted = [r for r in caplog.records if getattr(r, "event", None) == "train_schedule_fitted"]
    assert fitted, "the schedule was never fitted"
    assert fitted[-1].fitted_steps < fitted[0].planned_steps  # type: ignore[attr-defined]
    assert result.history[-1]["steps"] == fitted[-1].fitted_steps  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if getattr(r, "event", None) == "train_time_budget"]
    assert now[0] <= 40.0
