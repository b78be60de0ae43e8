"""Training checkpoints: a long fine-tune (the mpnet teacher runs for two hours on a CPU) survives a
kill, a reboot or a time-out and continues from its last checkpoint instead of from nothing.

A checkpoint is one file written to a temporary name and renamed over the old one, so a kill during
the write leaves the previous checkpoint whole (a half-written file would make the resume fail, or
worse, load garbage weights). It records what the run depends on — the training data's fingerprint
and every setting that changes the optimisation — and a resume with different data or settings is
refused: continuing an optimiser state on other data would produce a model no recipe describes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from connectors.errors import UserInputError

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointMismatch(UserInputError, ValueError):
    """The checkpoint was written by a run with other data or settings."""


def run_identity(data_fingerprint: str, settings: dict[str, Any]) -> str:
    """A hash of the data and of the settings that shape the optimisation (not of those that only
    say where or how verbosely it runs: device, progress, checkpoint paths)."""
    text = json.dumps({"data": data_fingerprint, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CheckpointStore:
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def save(self, identity: str, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{CHECKPOINT_FILE}.{os.getpid()}.partial"
        torch.save({"format": CHECKPOINT_FORMAT, "identity": identity, **state}, partial)
        # fsync before the rename: after a power cut the rename must not point at unwritten blocks.
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, self.path)

    def load(self, identity: str) -> dict[str, Any] | None:
        """The saved state, or None when there is none; a mismatching one is an error, not ignored
        (silently starting over would throw away hours the operator asked to keep)."""
        if not self.path.is_file():
            return None
        state: dict[str, Any] = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointMismatch(
                f"{self.path}: checkpoint format {state.get('format')!r} is not understood"
            )
        if state.get("identity") != identity:
            raise CheckpointMismatch(
                f"{self.path} was written by a run with other data or settings; "
                "remove it (or give another checkpoint folder) to start afresh"
            )
        return state

    def clear(self) -> None:
        """Remove the checkpoint once the model it leads to is safely registered."""
        self.path.unlink(missing_ok=True)
        for stale in self.folder.glob(f".{CHECKPOINT_FILE}.*.partial"):
            stale.unlink(missing_ok=True)
