"""A database row per job decides which scheduler process runs a trigger, and keeps runs apart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connectors.db.schema import JobLock


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def try_start(engine: Engine, job_id: str, owner: str, min_gap_s: float, stale_after_s: float) -> bool:
    """Take the job: False when another process runs it now, or started it less than `min_gap_s` ago
    (the same trigger fired in two schedulers). A run older than `stale_after_s` counts as dead."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.execute(
            dialect.insert(JobLock.__table__)
            .values(job_id=job_id, running=False, owner="", last_outcome="")
            .on_conflict_do_nothing()
        )
        row = session.execute(select(JobLock).where(JobLock.job_id == job_id).with_for_update()).scalar_one()
        started = _aware(row.started_at)
        if started is not None:
            age = now - started
            if row.running and age < timedelta(seconds=stale_after_s):
                return False
            if age < timedelta(seconds=min_gap_s):
                return False
        row.running, row.owner, row.started_at = True, owner[:200], now
    return True


def finish(engine: Engine, job_id: str, owner: str, outcome: str) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(JobLock, job_id, with_for_update=True)
        if row is not None and row.owner == owner[:200]:
            row.running, row.finished_at, row.last_outcome = False, datetime.now(UTC), outcome[:2000]


def last_started(engine: Engine, job_id: str) -> datetime | None:
    with Session(engine) as session:
        return _aware(session.scalar(select(JobLock.started_at).where(JobLock.job_id == job_id)))


def release_dead_owners(engine: Engine, host: str, alive: Callable[[int], bool]) -> list[str]:
    """Mark as not running the jobs whose owner process on `host` no longer exists."""
    released = []
    with Session(engine) as session, session.begin():
        for row in session.scalars(select(JobLock).where(JobLock.running.is_(True)).with_for_update()):
            owner_host, _, pid = row.owner.rpartition(":")
            if owner_host == host and pid.isdigit() and not alive(int(pid)):
                # No start time either: the abandoned run's trigger (new labels, a due schedule)
                # still stands, so the next check runs the job again instead of counting from it.
                row.running, row.started_at, row.last_outcome = False, None, "abandoned: its process died"
                released.append(row.job_id)
    return released
