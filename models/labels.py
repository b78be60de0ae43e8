"""Human labels: validation, the fixed holdout, import from files, and the annotation queue.

Bad label rows are rejected one by one with their line number and reason (unknown instruction,
label outside the instruction's set, unknown article, no text); the good rows of the same file
are stored. The holdout is decided by a hash of the text, so a text is on the same side forever
and the held-out set only grows as labels arrive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.label_store import LabelRow, article_texts, upsert_labels
from connectors.db.schema import Label, Prediction
from models.datasets import DataError, read_records
from models.instructions import InstructionSet
from models.text import prepare_text


def text_hash(text: str) -> str:
    return hashlib.sha256(prepare_text(text).casefold().encode()).hexdigest()


def is_holdout(hash_hex: str, share: float) -> bool:
    """Deterministic: the same text is always on the same side, whatever else arrives."""
    return int(hash_hex[:8], 16) % 10_000 < share * 10_000


@dataclass
class LabelReport:
    stored: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def summary(self) -> dict[str, Any]:
        return {"stored": self.stored, "rejected": len(self.rejected)}


def validate(
    records: Iterable[tuple[int, dict[str, Any]]],
    instructions: InstructionSet,
    engine: Engine,
    provenance: str,
    default_annotator: str = "",
) -> tuple[list[LabelRow], list[tuple[int, str]]]:
    """Turn raw records (line number, fields) into label rows; reasons for the ones that fail."""
    records = list(records)
    wanted_ids = [str(r["article_id"]) for _, r in records if r.get("article_id") and not r.get("text")]
    known = article_texts(engine, sorted(set(wanted_ids))) if wanted_ids else {}
    rows: list[LabelRow] = []
    rejected: list[tuple[int, str]] = []
    for line, record in records:
        name = str(record.get("instruction") or "").strip()
        label = str(record.get("label") or "").strip()
        article_id = str(record.get("article_id") or "").strip() or None
        text = str(record.get("text") or "").strip()
        try:
            instruction = instructions.get(name)
        except KeyError:
            rejected.append((line, f"unknown instruction {name!r}"))
            continue
        if not label:
            rejected.append((line, "no label"))
            continue
        if label not in instruction.labels:
            rejected.append((line, f"label {label!r} is not one of {instruction.name}'s labels"))
            continue
        if not text:
            if article_id is None:
                rejected.append((line, "neither text nor article_id"))
                continue
            if article_id not in known:
                rejected.append((line, f"unknown article {article_id!r}"))
                continue
            text = known[article_id]
        annotator = str(record.get("annotator") or default_annotator)
        rows.append(
            LabelRow(text, text_hash(text), name, label, annotator[:200], provenance[:200], article_id)
        )
    return rows, rejected


def store_labels(
    engine: Engine,
    records: Iterable[tuple[int, dict[str, Any]]],
    instructions: InstructionSet,
    provenance: str,
    default_annotator: str = "",
) -> LabelReport:
    rows, rejected = validate(records, instructions, engine, provenance, default_annotator)
    known_articles = _existing_articles(engine, [r.article_id for r in rows if r.article_id])
    rows = [r if r.article_id in known_articles else _without_article(r) for r in rows]
    return LabelReport(stored=upsert_labels(engine, rows) if rows else 0, rejected=rejected)


def _without_article(row: LabelRow) -> LabelRow:
    # A label may carry its text and an article id from another deployment: keep the text.
    return LabelRow(row.text, row.text_hash, row.instruction, row.label, row.annotator, row.provenance, None)


def _existing_articles(engine: Engine, ids: list[str]) -> set[str]:
    return set(article_texts(engine, sorted(set(ids)))) if ids else set()


def import_file(engine: Engine, path: Path, instructions: InstructionSet, annotator: str = "") -> LabelReport:
    """CSV or JSONL with text or article_id, instruction, label and an optional annotator."""
    is_csv = path.suffix.lower() not in {".jsonl", ".ndjson", ".json"}
    first_line = 2 if is_csv else 1  # CSV line 1 is the header
    try:
        records = [(first_line + i, r) for i, r in enumerate(read_records(path))]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc})") from exc
    return store_labels(engine, records, instructions, f"import:{path.name}", annotator)


def annotation_queue(engine: Engine, instruction: str, n: int, model_version: str) -> list[dict[str, Any]]:
    """The stored items `model_version` was least sure about (smallest top-two margin), unlabelled.

    Each entry has the fields `finsent labels import` reads, with `label` left empty to fill in.
    """
    with Session(engine) as session:
        labelled = set(session.scalars(select(Label.article_id).where(Label.instruction == instruction)))
        predictions = session.execute(
            select(Prediction.article_id, Prediction.label, Prediction.distribution).where(
                Prediction.instruction == instruction, Prediction.model_version == model_version
            )
        ).all()
    scored = []
    for article_id, predicted, distribution in predictions:
        if article_id in labelled:
            continue
        top = sorted(distribution.values(), reverse=True)
        margin = top[0] - (top[1] if len(top) > 1 else 0.0)
        scored.append((margin, article_id, predicted))
    scored.sort()
    chosen = scored[:n]
    texts = article_texts(engine, [a for _, a, _ in chosen])
    return [
        {
            "article_id": article_id,
            "text": texts.get(article_id, ""),
            "instruction": instruction,
            "label": "",
            "predicted": predicted,
            "margin": round(margin, 4),
        }
        for margin, article_id, predicted in chosen
    ]


def write_jsonl(entries: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
