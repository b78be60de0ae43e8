"""Labelled examples from CSV or JSONL files, with label mappings (e.g. bearish → negative).

A label that maps to nothing in the instruction's label set is an error naming the label, not a
silently dropped row: a typo in a mapping would otherwise train a model on a fraction of the data.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from connectors.errors import UserInputError
from connectors.news_item import article_text
from models.instructions import Instruction


class DataError(UserInputError, ValueError):
    """A training or evaluation file cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Example:
    text: str
    instruction: str
    label: str
    entity: str | None = None  # set: the label is the instruction's answer for this entity

    @property
    def head(self) -> str:
        """The head that learns from it: the instruction's, or its entity head."""
        return f"{self.instruction}@entity" if self.entity is not None else self.instruction


def parse_label_map(spec: str | None) -> dict[str, str]:
    """'0=negative,1=positive' or the path of a JSON/YAML mapping."""
    if not spec:
        return {}
    path = Path(spec)
    if path.is_file():
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise DataError(f"{path}: a label map must be a mapping")
        return {str(k): str(v) for k, v in data.items()}
    mapping: dict[str, str] = {}
    for pair in spec.split(","):
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise DataError(f"label map entry {pair!r}: expected SOURCE=TARGET")
        mapping[source.strip()] = target.strip()
    return mapping


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """CSV (header row; quoted fields may span lines) or JSON Lines, chosen by the file suffix."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object per line")
                yield record
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle)


def read_texts(path: Path, text_column: str = "text") -> list[str]:
    """Unlabelled texts from a file: `.txt` one per line; CSV or JSONL records with a `text_column`
    field, or `title` and `body` (a replay file or a news item dump), read as the worker reads
    an item: the headline, then the body."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = []
    for number, record in enumerate(read_records(path), 1):
        if record.get(text_column):
            text = str(record[text_column]).strip()
        elif record.get("title"):
            text = article_text(str(record["title"]).strip(), str(record.get("body") or "").strip())
        else:
            raise DataError(f"{path}: record {number} has neither {text_column!r} nor 'title'")
        if text:
            texts.append(text)
    return texts


def load_examples(
    path: Path,
    instruction: Instruction,
    text_column: str = "text",
    label_column: str = "label",
    label_map: dict[str, str] | None = None,
) -> list[Example]:
    label_map = label_map or {}
    examples: list[Example] = []
    unknown: Counter[str] = Counter()
    for number, record in enumerate(read_records(path)):
        if text_column not in record or label_column not in record:
            raise DataError(
                f"{path}: row {number} lacks column {text_column!r} or {label_column!r} "
                f"(columns: {sorted(record)})"
            )
        text = str(record[text_column] or "").strip()
        raw_label = str(record[label_column]).strip()
        label = label_map.get(raw_label, raw_label)
        if label not in instruction.labels:
            unknown[raw_label] += 1
            continue
        if text:
            examples.append(Example(text, instruction.name, label))
    if unknown:
        raise DataError(
            f"{path}: labels not in instruction {instruction.name!r} "
            f"({', '.join(instruction.label_names)}): "
            + ", ".join(f"{label!r} x{count}" for label, count in unknown.most_common(10))
            + "; map them with a label map"
        )
    if not examples:
        raise DataError(f"{path}: no usable rows")
    return examples


def fingerprint(examples: Iterable[Example]) -> str:
    """Identifies the training data: same examples in the same order → same fingerprint."""
    digest = hashlib.sha256()
    for example in examples:
        fields = [example.instruction, example.label, example.text]
        if example.entity is not None:  # article examples keep the fingerprints they always had
            fields.append(example.entity)
        digest.update(json.dumps(fields).encode())
        digest.update(b"\n")
    return digest.hexdigest()
