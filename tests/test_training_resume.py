"""A `full` training run killed with SIGKILL continues from its last checkpoint and ends with the
very model an uninterrupted run produces; a checkpoint from other settings is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models.checkpoints import CheckpointMismatch, CheckpointStore, run_identity
from models.encoder import load_encoder

ROOT = Path(__file__).resolve().parent.parent


def _run(data_dir: Path, checkpoints: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.resumable_training", str(data_dir), str(checkpoints), str(out), *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _checkpoint_step(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["progress"].done_steps)
    except (OSError, EOFError, RuntimeError, KeyError):
        return None


@pytest.mark.heavy
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_run_does(
    data_dir: Path, tmp_path: Path
) -> None:
    reference = _run(data_dir, tmp_path / "ref-checkpoints", tmp_path / "ref", "--slow")
    killed = _run(data_dir, tmp_path / "checkpoints", tmp_path / "killed", "--slow")
    checkpoint = tmp_path / "checkpoints" / "checkpoint.pt"
    deadline = time.monotonic() + 240
    step = None
    while time.monotonic() < deadline and killed.poll() is None:
        step = _checkpoint_step(checkpoint) if checkpoint.exists() else None
        if step is not None and step >= 10:
            break
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    step = _checkpoint_step(checkpoint)  # the last checkpoint written before the kill
    assert step is not None and step >= 10
    assert not (tmp_path / "killed" / "result.json").exists()

    resumed = _run(data_dir, tmp_path / "checkpoints", tmp_path / "killed")
    _, resumed_err = resumed.communicate(timeout=600)
    _, reference_err = reference.communicate(timeout=600)
    assert resumed.returncode == 0, resumed_err.decode()[-2000:]
    assert reference.returncode == 0, reference_err.decode()[-2000:]

    result = json.loads((tmp_path / "killed" / "result.json").read_text())
    baseline = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert result["resumed_from_step"] == step
    assert baseline["resumed_from_step"] is None
    total = baseline["history"][-1]["steps"]
    assert step < total  # killed mid-run, not after the end
    assert [h["steps"] for h in result["history"]] == [h["steps"] for h in baseline["history"]]
    # Same optimiser state, same batches, same dropout draws: the same model, bit for bit.
    model = torch.load(tmp_path / "killed" / "model.pt")
    expected = torch.load(tmp_path / "ref" / "model.pt")
    assert model.keys() == expected.keys()
    different = [key for key in expected if not torch.equal(model[key], expected[key])]
    assert not different, different[:5]
    assert result["history"] == baseline["history"]
    # Two runs that trained nothing would also be equal: the unfrozen encoder layers did move.
    _, base = load_encoder("minilm")
    moved = "encoder.encoder.layer.5.output.dense.weight"
    assert not torch.equal(model[moved], base.state_dict()[moved.removeprefix("encoder.")])


def test_a_checkpoint_from_other_data_or_settings_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.load(run_identity("data", {"lr": 1})) is None
    store.save(run_identity("data", {"lr": 1}), {"progress": 7})
    assert store.load(run_identity("data", {"lr": 1}))["progress"] == 7  # type: ignore[index]
    with pytest.raises(CheckpointMismatch, match="other data or settings"):
        store.load(run_identity("data", {"lr": 2}))
    with pytest.raises(CheckpointMismatch):
        store.load(run_identity("other data", {"lr": 1}))
    store.clear()
    assert store.load(run_identity("data", {"lr": 1})) is None
