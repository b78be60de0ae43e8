"""Instructions as data: a name, a natural-language text, a label set with descriptions and a scope.

The scope says what an instruction is asked about: `article` (one answer per item), `entity` (one
answer per entity the item names: "how is this news for ENTITY?") or `both` (the built-in
sentiment). Every scope is answered from the same encoder pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connectors.errors import UserInputError

BUILTIN_PATH = Path(__file__).with_name("instructions.yaml")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Keys that describe an entity beside its answers in `classify` and `news.classified` output.
RESERVED_NAMES = frozenset({"kind", "ticker", "found", "entities", "id"})
ARTICLE = "article"
ENTITY = "entity"
BOTH = "both"
SCOPES = (ARTICLE, ENTITY, BOTH)


class InstructionError(UserInputError, ValueError):
    """An instruction definition is unusable; the message says which field and why."""


@dataclass(frozen=True)
class Instruction:
    name: str
    text: str
    labels: dict[str, str]  # label -> one-line description, in output order
    active: bool = True
    scope: str = ARTICLE

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    @property
    def per_article(self) -> bool:
        return self.scope in (ARTICLE, BOTH)

    @property
    def per_entity(self) -> bool:
        return self.scope in (ENTITY, BOTH)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instruction:
        name = str(data.get("name", ""))
        if not _NAME.match(name):
            raise InstructionError(
                f"instruction name {name!r}: lower-case letters, digits and _, starting with a letter"
            )
        if name in RESERVED_NAMES:
            raise InstructionError(
                f"instruction name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})"
            )
        text = str(data.get("text", "")).strip()
        if not text:
            raise InstructionError(f"instruction {name!r} has no text")
        raw = data.get("labels")
        if isinstance(raw, list):
            labels = {str(label): "" for label in raw}
        elif isinstance(raw, dict):
            labels = {str(k): str(v or "") for k, v in raw.items()}
        else:
            raise InstructionError(
                f"instruction {name!r}: labels must be a list or a mapping label -> description"
            )
        if len(labels) < 2:
            raise InstructionError(f"instruction {name!r} needs at least two labels")
        scope = str(data.get("scope") or ARTICLE)
        if scope not in SCOPES:
            raise InstructionError(f"instruction {name!r}: scope {scope!r} is not one of {', '.join(SCOPES)}")
        return cls(name=name, text=text, labels=labels, active=bool(data.get("active", True)), scope=scope)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "text": self.text,
            "labels": dict(self.labels),
            "active": self.active,
            "scope": self.scope,
        }


@dataclass(frozen=True)
class InstructionSet:
    instructions: tuple[Instruction, ...] = field(default_factory=tuple)

    @property
    def active(self) -> list[Instruction]:
        return [i for i in self.instructions if i.active]

    @property
    def per_article(self) -> list[Instruction]:
        return [i for i in self.active if i.per_article]

    @property
    def per_entity(self) -> list[Instruction]:
        return [i for i in self.active if i.per_entity]

    def get(self, name: str) -> Instruction:
        for instruction in self.instructions:
            if instruction.name == name:
                return instruction
        raise KeyError(f"no instruction named {name!r}")

    def names(self) -> list[str]:
        return [i.name for i in self.instructions]

    @classmethod
    def of(cls, instructions: Iterable[Instruction]) -> InstructionSet:
        by_name: dict[str, Instruction] = {}
        for instruction in instructions:
            by_name[instruction.name] = instruction
        return cls(tuple(by_name.values()))


def load_yaml(path: Path = BUILTIN_PATH) -> InstructionSet:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, list):
        raise InstructionError(f"{path}: expected a list of instructions")
    return InstructionSet.of(Instruction.from_dict(item) for item in data)


def builtin() -> InstructionSet:
    return load_yaml(BUILTIN_PATH)


def merge(base: InstructionSet, overrides: Sequence[Instruction]) -> InstructionSet:
    """Database rows override the shipped YAML by name (operators change built-ins at runtime)."""
    return InstructionSet.of([*base.instructions, *overrides])
