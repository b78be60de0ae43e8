"""A small `full`-mode training run with checkpoints, run as its own process by the resume test so
that it can be killed with SIGKILL mid-run (as a reboot or the OOM killer would) and started again.

Usage: python -m tests.resumable_training DATA_DIR CHECKPOINT_DIR OUT_DIR [--slow]
`--slow` sleeps between batches (numbers unchanged) so the test can kill it mid-run reliably.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from models.encoder import load_encoder
from models.instructions import InstructionSet, builtin
from models.training import TrainConfig, Trainer
from tests.model_helpers import sentiment_slice

CONFIG = TrainConfig(
    mode="full",
    epochs=3,
    batch_size=8,
    max_length=32,
    freeze_layers=4,
    val_fraction=0.15,
    patience=5,
    seed=3,
    checkpoint_every_steps=5,
    progress=False,
)


def main(argv: list[str]) -> int:
    data_dir, checkpoint_dir, out_dir = (Path(a) for a in argv[:3])
    torch.set_num_threads(1)  # the same arithmetic in every process: results are compared bit for bit
    train, _ = sentiment_slice(data_dir, train_n=200, test_n=0)
    tokenizer, encoder = load_encoder("minilm")
    config = TrainConfig(**{**CONFIG.__dict__, "checkpoint_dir": str(checkpoint_dir)})
    trainer = Trainer(encoder, tokenizer, InstructionSet.of([builtin().get("sentiment")]), config)
    if "--slow" in argv:
        tokenise = trainer._tokenise

        def slow(rows: Any) -> dict[str, torch.Tensor]:
            time.sleep(0.15)
            return tokenise(rows)

        trainer._tokenise = slow  # type: ignore[method-assign]
    result = trainer.fit(train)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.state_dict(), out_dir / "model.pt")
    (out_dir / "result.json").write_text(
        json.dumps({"resumed_from_step": result.resumed_from_step, "history": result.history})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
