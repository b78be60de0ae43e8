"""Human labels in the `labels` table: batched upserts and the reads the retrain job needs.

A label is keyed by (text hash, instruction, annotator): the same annotator labelling the same
text again is a correction and replaces the earlier label; different annotators are kept apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connectors.db.schema import Article, Label
from connectors.news_item import article_text


@dataclass(frozen=True)
class LabelRow:
    text: str
    text_hash: str
    instruction: str
    label: str
    annotator: str = ""
    provenance: str = ""
    article_id: str | None = None


def _insert(engine: Engine) -> Any:
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(Label.__table__)


def upsert_labels(engine: Engine, rows: Sequence[LabelRow], chunk: int = 500) -> int:
    now = datetime.now(UTC)
    # One row per key (the last wins): PostgreSQL refuses to update one row twice in a statement.
    rows = list({(r.text_hash, r.instruction, r.annotator): r for r in rows}.values())
    with Session(engine) as session, session.begin():
        for start in range(0, len(rows), chunk):
            values = [{**row.__dict__, "created_at": now} for row in rows[start : start + chunk]]
            statement = _insert(engine).values(values)
            statement = statement.on_conflict_do_update(
                index_elements=["text_hash", "instruction", "annotator"],
                set_={
                    "label": statement.excluded.label,
                    "provenance": statement.excluded.provenance,
                    "article_id": statement.excluded.article_id,
                    "created_at": statement.excluded.created_at,
                },
            )
            session.execute(statement)
    return len(rows)


def read_labels(engine: Engine, instruction: str | None = None) -> list[LabelRow]:
    query = select(Label).order_by(Label.id)
    if instruction is not None:
        query = query.where(Label.instruction == instruction)
    with Session(engine) as session:
        return [
            LabelRow(r.text, r.text_hash, r.instruction, r.label, r.annotator, r.provenance, r.article_id)
            for r in session.scalars(query)
        ]


def count_labels_since(engine: Engine, since: datetime | None) -> int:
    query = select(func.count()).select_from(Label)
    if since is not None:
        query = query.where(Label.created_at > since)
    with Session(engine) as session:
        return int(session.scalar(query) or 0)


def article_texts(engine: Engine, ids: Sequence[str]) -> dict[str, str]:
    """Title and body of the given articles (what the worker classified), by id."""
    found: dict[str, str] = {}
    with Session(engine) as session:
        for start in range(0, len(ids), 500):
            rows = session.execute(
                select(Article.id, Article.title, Article.body).where(
                    Article.id.in_(ids[start : start + 500])
                )
            )
            for article_id, title, body in rows:
                found[article_id] = article_text(title, body)
    return found
