"""What the worker reads afresh between batches: the instruction set and the classifier.

Both are looked up at most every `refresh_s` seconds, so an instruction an operator adds, or a
model version that gets activated, is used from the next batch on without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.schema import Instruction as InstructionRow
from models.classifier import Classifier, StandInClassifier
from models.instructions import Instruction, InstructionSet, builtin, merge
from pipeline.settings import Settings

T = TypeVar("T")


class _Refreshing(Generic[T]):
    def __init__(self, load: Callable[[], T], refresh_s: float) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._value: T | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> T:
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._loaded_at >= self._refresh_s:
                self._value = self._load()
                self._loaded_at = now
            return self._value


class InstructionProvider(_Refreshing[InstructionSet]):
    """Built-in YAML instructions, overridden and extended by rows of the `instructions` table."""

    def __init__(self, engine: Engine, refresh_s: float = 5.0) -> None:
        self._engine = engine
        super().__init__(self._read, refresh_s)

    def _read(self) -> InstructionSet:
        with Session(self._engine) as session:
            rows = session.scalars(select(InstructionRow)).all()
        overrides = [
            Instruction(name=row.name, text=row.text, labels=dict(row.labels), active=row.active)
            for row in rows
        ]
        return merge(builtin(), overrides)


class ClassifierProvider(_Refreshing[Classifier]):
    @classmethod
    def from_settings(cls, settings: Settings) -> ClassifierProvider:
        if settings.classifier == "standin":
            return cls(StandInClassifier, refresh_s=3600.0)
        raise ValueError(f"unknown classifier {settings.classifier!r}; expected 'standin'")
