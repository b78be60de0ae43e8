"""`finsent worker` with a misbehaving stand-in model, for the fault tests.

Run as `python -m tests.chaos_worker`: the real worker (real Kafka, real database, the project's
own batch code), except that the constant stand-in classifier is replaced by one that can be
slow, can fail like a GPU out of memory on big batches, and fails on chosen texts. The knobs are
test-only environment variables (not `FINSENT_` settings: production has no fault switches):

- `CHAOS_CLASSIFY_DELAY_S`: seconds each classify call sleeps (a slow model);
- `CHAOS_OOM_ABOVE`: a call with more texts than this raises an out-of-memory error;
- `CHAOS_FAIL_MARKER`: a call that contains a text with this marker raises.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import pipeline.service.runtime as runtime
from models.classifier import Output, StandInClassifier
from models.instructions import InstructionSet
from pipeline.cli import main


class OutOfMemory(RuntimeError):
    """What torch raises on a GPU that cannot hold the batch (`torch.cuda.OutOfMemoryError`)."""


class ChaosClassifier(StandInClassifier):
    version = "standin-chaos"

    def __init__(self) -> None:
        self.delay_s = float(os.environ.get("CHAOS_CLASSIFY_DELAY_S", "0"))
        self.oom_above = int(os.environ.get("CHAOS_OOM_ABOVE", "0"))
        self.fail_marker = os.environ.get("CHAOS_FAIL_MARKER", "")

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.oom_above and len(texts) > self.oom_above:
            raise OutOfMemory(f"CUDA out of memory: tried to allocate a batch of {len(texts)} texts")
        if self.fail_marker and any(self.fail_marker in text for text in texts):
            raise ValueError("the model cannot digest this text")
        return super().classify(texts, instructions)


if __name__ == "__main__":
    runtime.StandInClassifier = ChaosClassifier  # type: ignore[misc]
    sys.exit(main(["worker", *sys.argv[1:]]))
