"""The contract between the worker and whatever classifies: a batch of texts in, per-instruction
outputs out. The worker depends on this protocol only, so the model behind it can be swapped
between batches (hot swap) without the worker knowing which implementation it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from models.instructions import InstructionSet


@dataclass(frozen=True)
class Output:
    """One instruction's answer for one text."""

    label: str
    score: float
    distribution: dict[str, float]
    zero_shot: bool = False


class Classifier(Protocol):
    version: str

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        """One dict per text, keyed by the name of every active instruction."""
        ...


class StandInClassifier:
    """A constant classifier for plumbing tests and the pipeline-overhead benchmark.

    NOT a model: every text gets each instruction's first label with a uniform distribution.
    It exists so the streaming and storage path can be tested and measured without the cost
    of inference.
    """

    version = "standin-constant"

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        outputs: dict[str, Output] = {}
        for instruction in instructions.active:
            labels = instruction.label_names
            share = 1.0 / len(labels)
            outputs[instruction.name] = Output(labels[0], share, dict.fromkeys(labels, share))
        return [dict(outputs) for _ in texts]
