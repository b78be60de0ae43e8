"""Housekeeping deletes: what is kept, and for how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from connectors.db.schema import DeadLetter


def prune_dead_letters(engine: Engine, older_than_days: float) -> int:
    """Delete resolved dead-letter records older than the retention; unresolved ones stay."""
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    with Session(engine) as session, session.begin():
        result = session.execute(
            delete(DeadLetter).where(DeadLetter.resolved_at.is_not(None), DeadLetter.created_at < cutoff)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
