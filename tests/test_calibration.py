"""Temperature scaling: a planted temperature is recovered, and a small trained model's scores get
closer to its accuracy on held-out rows; the temperature travels with the saved model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from models.calibration import calibration_report, expected_calibration_error, fit_temperature
from models.encoder import load_encoder
from models.instructions import InstructionSet, builtin
from models.registry import ModelRegistry
from models.text import prepare_text
from models.training import TrainConfig, Trainer
from tests.model_helpers import sentiment_slice


def test_a_planted_temperature_is_recovered() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 3, generator=generator) * 3
    # Labels drawn from softmax(logits / 2.5): the logits are 2.5 times too confident.
    targets = torch.multinomial(torch.softmax(logits / 2.5, dim=-1), 1, generator=generator)[:, 0]
    assert abs(fit_temperature(logits, targets) - 2.5) < 0.15
    report = calibration_report(logits, targets)
    assert report["ece_after"] < report["ece_before"] / 3
    # Perfect confidence needs no temperature: the ECE of a calibrated model is near zero.
    fair = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
    assert abs(fit_temperature(logits, fair) - 1.0) < 0.1
    assert expected_calibration_error(torch.softmax(logits, dim=-1), fair) < 0.03


@pytest.mark.heavy
def test_calibration_lowers_ece_on_held_out_rows_and_is_saved(data_dir: Path, sqlite_url: str) -> None:
    pool, _ = sentiment_slice(data_dir, train_n=2000, test_n=0)
    random.Random(1).shuffle(pool)
    held, train = pool[:500], pool[500:]
    seen = {prepare_text(e.text).casefold() for e in train}
    held = [e for e in held if prepare_text(e.text).casefold() not in seen]  # never trained on
    sentiment = InstructionSet.of([builtin().get("sentiment")])
    tokenizer, encoder = load_encoder("minilm")
    # A head trained on and on, without weight decay or early stopping, grows over-confident, as
    # long fine-tunes do: the miscalibration calibration is for, made reliably large.
    config = TrainConfig(
        mode="heads",
        heads_epochs=150,
        head_lr=0.05,
        weight_decay=0.0,
        patience=100,
        val_fraction=0.2,
        progress=False,
        seed=1,
    )
    result = Trainer(encoder, tokenizer, sentiment, config).fit(train)
    report = result.metrics["sentiment"]["calibration"]
    assert report["n"] == result.counts["validation"]["sentiment"]
    assert result.model.temperatures == {"sentiment": report["temperature"]}
    assert report["temperature"] > 1.5  # over-confident: its scores are flattened

    from connectors.db.engine import make_engine

    registry = ModelRegistry(
        Path(sqlite_url.removeprefix("sqlite:///")).parent / "models", make_engine(sqlite_url)
    )
    version = registry.register(result, tokenizer, sentiment, "minilm")
    loaded = registry.load(version)
    assert loaded.model.temperatures == result.model.temperatures  # saved with the model
    assert registry.versions()[-1].metrics["sentiment"]["ece"] == report["ece_after"]

    labels = sentiment.get("sentiment").label_names
    targets = torch.tensor([labels.index(e.label) for e in held])
    answers = loaded.classify([e.text for e in held], sentiment)
    calibrated = torch.tensor([[a["sentiment"].distribution[label] for label in labels] for a in answers])
    assert all(a["sentiment"].score == max(a["sentiment"].distribution.values()) for a in answers)
    loaded.model.temperatures.clear()
    raw = torch.tensor(
        [
            [a["sentiment"].distribution[label] for label in labels]
            for a in loaded.classify([e.text for e in held], sentiment)
        ]
    )
    assert torch.equal(raw.argmax(-1), calibrated.argmax(-1))  # the same labels, other scores
    before, after = expected_calibration_error(raw, targets), expected_calibration_error(calibrated, targets)
    assert after < 0.6 * before, (before, after)
