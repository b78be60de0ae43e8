"""The contract between the worker and whatever classifies: a batch of texts in, per-instruction
outputs out. The worker depends on this protocol only, so the model behind it can be swapped
between batches (hot swap) without the worker knowing which implementation it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.entities import locate
from models.instructions import InstructionSet


@dataclass(frozen=True)
class Output:
    """One instruction's answer for one text."""

    label: str
    score: float
    distribution: dict[str, float]
    zero_shot: bool = False


@dataclass(frozen=True)
class EntityAnswer:
    """Every entity-scoped instruction's answer for one entity of one text. `found`: the entity
    occurs in the text (else the model read the entity string as given)."""

    found: bool
    outputs: dict[str, Output]


@dataclass(frozen=True)
class ItemAnswer:
    """One text's answers: per article-scoped instruction, and per entity (keyed by the entity
    string exactly as given) per entity-scoped instruction."""

    article: dict[str, Output]
    entities: dict[str, EntityAnswer]


class Classifier(Protocol):
    version: str

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        """One dict per text, keyed by the name of every active article-scoped instruction."""
        ...

    def classify_items(
        self, texts: Sequence[str], instructions: InstructionSet, entities: Sequence[Sequence[str]]
    ) -> list[ItemAnswer]:
        """Article and entity answers from one pass; `entities[i]` are text i's entities."""
        ...


class StandInClassifier:
    """A constant classifier for plumbing tests and the pipeline-overhead benchmark.

    NOT a model: every text gets each instruction's first label with a uniform distribution.
    It exists so the streaming and storage path can be tested and measured without the cost
    of inference.
    """

    version = "standin-constant"

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        outputs = {i.name: _constant(i.label_names) for i in instructions.per_article}
        return [dict(outputs) for _ in texts]

    def classify_items(
        self, texts: Sequence[str], instructions: InstructionSet, entities: Sequence[Sequence[str]]
    ) -> list[ItemAnswer]:
        per_entity = {i.name: _constant(i.label_names) for i in instructions.per_entity}
        return [
            ItemAnswer(
                article,
                {e: EntityAnswer(bool(locate(text, e)), dict(per_entity)) for e in names}
                if per_entity
                else {},
            )
            for text, article, names in zip(texts, self.classify(texts, instructions), entities, strict=True)
        ]


def _constant(labels: list[str]) -> Output:
    share = 1.0 / len(labels)
    return Output(labels[0], share, dict.fromkeys(labels, share))
