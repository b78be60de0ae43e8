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
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.label_store import LabelRow, article_texts, read_labels, upsert_labels
from connectors.db.schema import Article
from connectors.news_item import article_text
from models.datasets import DataError, read_records
from models.instructions import Instruction, InstructionSet
from models.text import prepare_text

if TYPE_CHECKING:  # torch and transformers load only for the queue, not for label imports
    from models.executor import InstructionExecutor

QUEUE_POOL = 2000  # recent articles the queue scores: about 10 s of embedding on 2 cores


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


def read_label_file(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, fields) of a CSV or JSONL label file: text or article_id, instruction, label,
    and an optional annotator. Line numbers are the file's own, for error messages."""
    is_csv = path.suffix.lower() not in {".jsonl", ".ndjson", ".json"}
    first_line = 2 if is_csv else 1  # CSV line 1 is the header
    try:
        return [(first_line + i, r) for i, r in enumerate(read_records(path))]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc})") from exc


def import_file(engine: Engine, path: Path, instructions: InstructionSet, annotator: str = "") -> LabelReport:
    return store_labels(engine, read_label_file(path), instructions, f"import:{path.name}", annotator)


def annotation_queue(
    engine: Engine,
    executor: InstructionExecutor,
    instruction: Instruction,
    n: int,
    pool_size: int = QUEUE_POOL,
) -> list[dict[str, Any]]:
    """The stored, unlabelled items whose labels would teach `instruction` most
    (`models.active_learning`: coverage of labels it has few of, then uncertainty, kept diverse).

    Each entry has the fields `finsent labels import` reads, with `label` left empty to fill in,
    and says why it was picked. Candidates are the `pool_size` most recent articles; they are
    embedded here, with the same executor the worker runs, so no stored prediction is needed.
    """
    from models import active_learning

    every_label = read_labels(engine, instruction.name)
    seen_articles = {r.article_id for r in every_label if r.article_id}
    seen_texts = {r.text_hash for r in every_label}
    labelled = every_label[-pool_size:]  # the ones embedded to keep picks away from them
    with Session(engine) as session:
        recent = session.execute(
            select(Article.id, Article.title, Article.body)
            .order_by(Article.published_at.desc(), Article.id)
            .limit(pool_size + len(seen_articles))
        ).all()
    candidates: list[tuple[str, str]] = []
    for article_id, title, body in recent:
        text = article_text(title, body)
        if article_id not in seen_articles and text_hash(text) not in seen_texts:
            candidates.append((article_id, text))
    candidates = candidates[:pool_size]
    if not candidates or n <= 0:
        return []
    pooled = executor.embed([text for _, text in candidates])
    probs, _ = executor.probabilities(pooled, instruction)
    labels = instruction.label_names
    picks = active_learning.select(
        probs,
        labels,
        pooled,
        n,
        executor.embed([r.text for r in labelled]) if labelled else None,
        [r.label for r in labelled],
    )
    entries = []
    for pick in picks:
        article_id, text = candidates[pick.index]
        distribution = probs[pick.index]
        top = sorted(distribution.tolist(), reverse=True)
        entries.append(
            {
                "article_id": article_id,
                "text": text,
                "instruction": instruction.name,
                "label": "",
                "predicted": labels[int(distribution.argmax())],
                "margin": round(top[0] - (top[1] if len(top) > 1 else 0.0), 4),
                "why": pick.reason,
            }
        )
    return entries


def write_jsonl(entries: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
