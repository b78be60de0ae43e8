"""Silences: for a while, alerts whose labels match are not notified (they still fire and are
recorded). Matchers are Alertmanager-like: `key=AAPL`, `rule!=x`, `key=~AAPL|MSFT` (full match).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.schema import Silence, utcnow
from connectors.errors import UserInputError

LABELS = ("rule", "severity", "dimension", "metric", "key")
_MATCHER = re.compile(r"^\s*([a-z_]+)\s*(=~|!=|=)\s*(.*?)\s*$")


class SilenceError(UserInputError):
    """A silence that cannot be created, with the reason."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        return re.fullmatch(self.value, actual) is not None

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    match = _MATCHER.match(text)
    if not match:
        raise SilenceError(f"not a matcher: {text!r} (use label=value, label!=value or label=~regex)")
    label, op, value = match.groups()
    if label not in LABELS:
        raise SilenceError(f"unknown label {label!r} in {text!r}; labels: {', '.join(LABELS)}")
    if op == "=~":
        try:
            re.compile(value)
        except re.error as exc:
            raise SilenceError(f"bad regular expression in {text!r}: {exc}") from None
    return Matcher(label, op, value)


def matches_all(matchers: Sequence[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def create(
    engine: Engine,
    matchers: Sequence[Matcher],
    duration: timedelta,
    comment: str = "",
    created_by: str = "",
    starts_at: datetime | None = None,
) -> int:
    if not matchers:
        raise SilenceError("a silence needs at least one matcher (--match label=value)")
    if duration.total_seconds() <= 0:
        raise SilenceError("a silence needs a positive duration")
    start = starts_at or utcnow()
    with Session(engine) as session, session.begin():
        row = Silence(
            matchers=[m.as_dict() for m in matchers],
            comment=comment,
            created_by=created_by,
            starts_at=start,
            ends_at=start + duration,
        )
        session.add(row)
        session.flush()
        return row.id


def expire(engine: Engine, silence_id: int, now: datetime | None = None) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(Silence, silence_id)
        if row is None:
            raise SilenceError(f"no silence with id {silence_id}")
        row.ends_at = min(row.ends_at, now or utcnow())


def active(session: Session, now: datetime) -> list[tuple[int, list[Matcher]]]:
    rows = session.scalars(select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now))
    return [(row.id, [Matcher(**m) for m in row.matchers]) for row in rows]


def listing(engine: Engine, now: datetime | None = None, include_expired: bool = False) -> list[Silence]:
    with Session(engine) as session:
        query = select(Silence).order_by(Silence.id)
        if not include_expired:
            query = query.where(Silence.ends_at > (now or utcnow()))
        return list(session.scalars(query))
