"""Model registry: versioned folders plus rows; activate, rollback; a loaded version predicts the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from connectors.db.engine import make_engine
from connectors.db.migrate import upgrade
from models.encoder import load_encoder
from models.executor import ExecutorOptions, InstructionExecutor
from models.instructions import InstructionSet, builtin
from models.registry import ModelRegistry, RegistryError, snapshot_instructions
from models.training import TrainConfig, Trainer, TrainResult
from tests.model_helpers import sentiment_slice

TEXTS = [
    "Shares of Acme jump after record profit",
    "Acme cuts 5,000 jobs",
    "Acme to hold annual meeting in May",
]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    return make_engine(url)


@pytest.fixture(scope="module")
def trained(data_dir_module: Path) -> TrainResult:
    train, _ = sentiment_slice(data_dir_module, train_n=120, test_n=0)
    tokenizer, encoder = load_encoder("minilm")
    config = TrainConfig(mode="heads", heads_epochs=10, progress=False)
    return Trainer(encoder, tokenizer, InstructionSet.of([builtin().get("sentiment")]), config).fit(train)


def test_register_load_activate_rollback(engine: Engine, tmp_path: Path, trained: TrainResult) -> None:
    tokenizer, _ = load_encoder("minilm")
    registry = ModelRegistry(tmp_path / "models", engine)
    snapshot = InstructionSet.of([builtin().get("sentiment")])
    first = registry.register(trained, tokenizer, snapshot, "minilm")
    folder = registry.path_of(first)
    for name in ("encoder/model.safetensors", "encoder/tokenizer.json", "heads.safetensors", "metrics.json"):
        assert (folder / name).is_file(), name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data_fingerprint"] == trained.data_fingerprint
    assert snapshot_instructions(folder).names() == ["sentiment"]
    assert json.loads((folder / "metrics.json").read_text())["validation"]["sentiment"]["n"] > 0

    in_memory = InstructionExecutor(trained.model, tokenizer, "mem", ExecutorOptions(device="cpu"))
    loaded = registry.load(first, ExecutorOptions(device="cpu"))
    for a, b in zip(in_memory.classify(TEXTS, builtin()), loaded.classify(TEXTS, builtin()), strict=True):
        assert a["sentiment"].label == b["sentiment"].label
        assert a["sentiment"].score == pytest.approx(b["sentiment"].score, abs=1e-5)
        assert not b["sentiment"].zero_shot and b["topic"].zero_shot

    assert registry.active_version() is None
    registry.activate(first)
    second = registry.register(trained, tokenizer, snapshot, "minilm")
    assert second != first
    assert {v.version: v.status for v in registry.versions()} == {first: "active", second: "candidate"}
    registry.activate(second)
    assert {v.version: v.status for v in registry.versions()} == {first: "retired", second: "active"}
    assert registry.rollback() == first
    assert registry.active_version() == first
    with pytest.raises(RegistryError, match="no model version"):
        registry.activate("nope")


def test_rollback_without_history_is_an_error(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="nothing to roll back"):
        ModelRegistry(tmp_path / "models", engine).rollback()


def test_same_data_registered_twice_in_one_second_gets_a_new_version(engine: Engine, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", engine)
    (tmp_path / "models" / "20260101-000000-abcdef12").mkdir(parents=True)
    assert registry._new_version("20260101-000000-abcdef12") == "20260101-000000-abcdef12-2"
    assert registry._new_version("20260101-000001-abcdef12") == "20260101-000001-abcdef12"
