"""Housekeeping deletes: what is kept, and for how long.

Nothing an analyst view shows is removed: the views read each article's latest prediction (and
each entity's) from the current tables and the rollups, never a body or a raw prediction, and
unresolved dead letters stay until someone deals with them. Every retention is off (keep for
ever) unless set, except resolved dead letters.

On PostgreSQL housekeeping also keeps the raw prediction tables' month partitions ahead of the
clock (connectors/db/partitions.py), and the raw-history retention drops whole months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from connectors.db.partitions import drop_partitions_before, ensure_partitions
from connectors.db.schema import Article, DeadLetter, EntityPrediction, Prediction


@dataclass(frozen=True)
class Retention:
    dead_letter_days: float  # resolved dead letters
    body_days: float | None = None  # article bodies (titles, predictions and links stay)
    superseded_days: float | None = None  # predictions a newer one replaced, counted from then
    # Raw predictions (every model version's) of articles published longer ago, whole months at
    # a time by dropping partitions: PostgreSQL only (SQLite keeps them; see `superseded_days`).
    raw_history_days: float | None = None


def prune_dead_letters(engine: Engine, older_than_days: float, now: datetime | None = None) -> int:
    """Delete resolved dead-letter records older than the retention; unresolved ones stay."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    with Session(engine) as session, session.begin():
        result = session.execute(
            delete(DeadLetter).where(DeadLetter.resolved_at.is_not(None), DeadLetter.created_at < cutoff)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def drop_old_bodies(engine: Engine, older_than_days: float, now: datetime | None = None) -> int:
    """Empty the bodies of articles published before the cutoff (the title and every prediction
    stay, so the series and views do not change)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(Article).where(Article.published_at < cutoff, Article.body != "").values(body="")
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def drop_superseded(engine: Engine, older_than_days: float, now: datetime | None = None) -> dict[str, int]:
    """Delete predictions (article and entity) that a newer one for the same article, instruction
    (and entity) replaced more than the retention ago. The newest stays, whatever its age: it is
    what the views show. 'Newer' is the views' own order: later creation, then higher id."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    deleted: dict[str, int] = {}
    tables: list[tuple[str, type[Prediction] | type[EntityPrediction], tuple[str, ...]]] = [
        ("predictions", Prediction, ("article_id", "instruction")),
        ("entity_predictions", EntityPrediction, ("article_id", "entity", "instruction")),
    ]
    for name, model, keys in tables:
        newer = aliased(model)
        replaced = exists(
            select(newer.id).where(
                *[getattr(newer, k) == getattr(model, k) for k in keys],
                or_(
                    newer.created_at > model.created_at,
                    and_(newer.created_at == model.created_at, newer.id > model.id),
                ),
                newer.created_at < cutoff,
            )
        )
        with Session(engine) as session, session.begin():
            result = session.execute(delete(model).where(replaced))
            deleted[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


def apply_retention(engine: Engine, retention: Retention, now: datetime | None = None) -> dict[str, int]:
    """Every retention that is set; returns what each removed."""
    moment = now or datetime.now(UTC)
    done = {"partitions_created": len(ensure_partitions(engine, moment))}
    done["dead_letters"] = prune_dead_letters(engine, retention.dead_letter_days, now)
    if retention.body_days is not None:
        done["bodies"] = drop_old_bodies(engine, retention.body_days, now)
    if retention.superseded_days is not None:
        done.update(drop_superseded(engine, retention.superseded_days, now))
    if retention.raw_history_days is not None:
        cutoff = moment - timedelta(days=retention.raw_history_days)
        done["partitions_dropped"] = len(drop_partitions_before(engine, cutoff))
    return done
