"""Taught heads in the `instruction_heads` table: one active head per instruction and model version.

A head is only meaningful on the representation it was fitted on, so every row names its model
version and a worker installs only the rows of the version it has loaded. A retrain in `heads`
mode keeps the encoder, so an instruction whose taught head it keeps gets that head carried over
to the new version (`models.retrain`); a full fine-tune starts the new version without taught
heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from connectors.db.schema import InstructionHead
from models.fewshot import LinearHead

if TYPE_CHECKING:
    from models.executor import InstructionExecutor


@dataclass(frozen=True)
class HeadRecord:
    id: int
    instruction: str
    model_version: str
    status: str
    label_count: int
    metrics: dict[str, Any]
    decision_reason: str
    created_at: datetime


def active_heads(engine: Engine, model_version: str) -> dict[str, LinearHead]:
    with Session(engine) as session:
        rows = session.scalars(
            select(InstructionHead).where(
                InstructionHead.model_version == model_version, InstructionHead.status == "active"
            )
        ).all()
        return {row.instruction: LinearHead.from_dict(row.head) for row in rows}


def install_active(engine: Engine, executor: InstructionExecutor) -> None:
    """Give `executor` the active taught heads of its own model version (and only those)."""
    executor.install_taught(active_heads(engine, executor.version))


def active_record(engine: Engine, instruction: str, model_version: str) -> HeadRecord | None:
    with Session(engine) as session:
        row = session.scalars(
            select(InstructionHead).where(
                InstructionHead.instruction == instruction,
                InstructionHead.model_version == model_version,
                InstructionHead.status == "active",
            )
        ).first()
        return None if row is None else _record(row)


def record(
    engine: Engine,
    instruction: str,
    model_version: str,
    head: LinearHead,
    status: str,
    reason: str,
    metrics: dict[str, Any],
    label_count: int,
) -> int:
    """Store a decided head; an `active` one retires the head it replaces in the same transaction,
    so a reader never sees two active heads (or none, between the two writes)."""
    if status not in {"active", "rejected"}:
        raise ValueError(f"a decided head is active or rejected, not {status!r}")
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        if status == "active":
            session.execute(
                update(InstructionHead)
                .where(
                    InstructionHead.instruction == instruction,
                    InstructionHead.model_version == model_version,
                    InstructionHead.status == "active",
                )
                .values(status="retired")
            )
        row = InstructionHead(
            instruction=instruction,
            model_version=model_version,
            status=status,
            head=head.to_dict(),
            label_count=label_count,
            metrics=metrics,
            decision_reason=reason,
            created_at=now,
            activated_at=now if status == "active" else None,
        )
        session.add(row)
        session.flush()
        return int(row.id)


def history(engine: Engine, instruction: str | None = None) -> list[HeadRecord]:
    query = select(InstructionHead).order_by(InstructionHead.id)
    if instruction is not None:
        query = query.where(InstructionHead.instruction == instruction)
    with Session(engine) as session:
        return [_record(r) for r in session.scalars(query)]


def _record(row: InstructionHead) -> HeadRecord:
    return HeadRecord(
        row.id,
        row.instruction,
        row.model_version,
        row.status,
        row.label_count,
        dict(row.metrics),
        row.decision_reason,
        row.created_at,
    )
