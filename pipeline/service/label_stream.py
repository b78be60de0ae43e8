"""The worker's second stream: human labels from `news.labels` into the `labels` table.

A message is a JSON object with `text` or `article_id`, `instruction`, `label` and optionally
`annotator`. A message that is not such an object, or that fails validation (unknown instruction,
label outside the set, unknown article), is dead-lettered with its reason, like a bad news item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Engine

from connectors.db.writer import write_batch
from models.instructions import InstructionSet
from models.labels import store_labels
from pipeline.service.batch import BatchOutcome, DeadLetter, RawRecord, dead_letter_rows, retry_db

R = TypeVar("R")


class LabelBatchProcessor:
    def __init__(
        self,
        engine: Engine,
        instructions: Callable[[], InstructionSet],
        *,
        db_retry_max_s: float = 30.0,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self._engine = engine
        self._instructions = instructions
        self._db_retry_max_s = db_retry_max_s
        self._stop_requested = stop_requested

    def _retry(self, what: str, call: Callable[[], R]) -> R:
        return retry_db(what, call, self._db_retry_max_s, self._stop_requested)

    def process(self, records: Sequence[RawRecord]) -> tuple[int, BatchOutcome]:
        outcome = BatchOutcome(model_version="")
        parsed: list[tuple[int, dict[str, object]]] = []
        for index, record in enumerate(records):
            try:
                value = json.loads(record.value or b"")
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                outcome.dead.append(DeadLetter(record, "invalid_json", f"label message is not JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                outcome.dead.append(
                    DeadLetter(record, "not_an_object", "a label message must be a JSON object")
                )
                continue
            parsed.append((index, value))
        instructions = self._retry("instruction lookup", self._instructions)
        report = self._retry(
            "label write",
            lambda: store_labels(
                self._engine, parsed, instructions, f"kafka:{records[0].topic}" if records else ""
            ),
        )
        for index, reason in report.rejected:
            outcome.dead.append(DeadLetter(records[index], "invalid_label", reason))
        dead_rows = dead_letter_rows(outcome.dead)
        if dead_rows:
            self._retry("dead-letter write", lambda: write_batch(self._engine, [], dead_rows, []))
        return report.stored, outcome
