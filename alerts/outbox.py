"""The notification outbox: every notification is a row before it is sent, and delivered after.

The scan writes rows in the same transaction as the alert changes they report, so a crash can
neither lose a notification nor report a change that did not happen. Delivery reads due rows
in order, sends each, and marks it delivered in its own transaction. A receiver that is down
keeps its rows pending with exponential backoff (capped), so when it recovers it gets every
notification once, in order, also after a scheduler restart. Only a crash between a receiver
accepting a notification and the row being marked can repeat it; the idempotency key lets the
receiver drop that repeat. Rows that stayed undeliverable past `max_age` end as `failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts.notifiers import DeliveryError, Notifier
from connectors.db.schema import AlertNotification, utcnow

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class DeliveryPolicy:
    backoff_s: float = 30.0
    backoff_max_s: float = 900.0
    max_age_s: float = 24 * 3600.0
    batch: int = 200


@dataclass
class DeliveryReport:
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    by_receiver: dict[str, int] = field(default_factory=dict)
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (receiver, delivered|deferred|failed)


def enqueue(
    session: Session,
    receiver: str,
    idempotency_key: str,
    payload: dict[str, Any],
    group_key: str,
    alert_id: int | None,
    now: datetime,
) -> None:
    session.add(
        AlertNotification(
            alert_id=alert_id,
            group_key=group_key[:300],
            receiver=receiver,
            idempotency_key=idempotency_key,
            payload=payload,
            status=PENDING,
            attempts=0,
            last_error="",
            next_attempt_at=now,
            created_at=now,
        )
    )


def deliver_due(
    engine: Engine,
    notifiers: Mapping[str, Notifier],
    now: datetime | None = None,
    policy: DeliveryPolicy | None = None,
) -> DeliveryReport:
    """Send what is due. After one failure a receiver is skipped for the rest of this run, so a
    dead receiver costs one timeout per run, not one per row, and its rows keep their order."""
    policy = policy or DeliveryPolicy()
    now = now or utcnow()
    report = DeliveryReport()
    down: set[str] = set()
    with Session(engine) as session:
        due = list(
            session.scalars(
                select(AlertNotification)
                .where(AlertNotification.status == PENDING, AlertNotification.next_attempt_at <= now)
                .order_by(AlertNotification.id)
                .limit(policy.batch)
            )
        )
    for row in due:
        if row.receiver in down:
            report.deferred += 1
            continue
        notifier = notifiers.get(row.receiver)
        if notifier is None:
            error: DeliveryError | None = DeliveryError(f"receiver {row.receiver!r} is not configured")
        else:
            try:
                notifier.send(row.payload, row.idempotency_key)
                error = None
            except DeliveryError as exc:
                error = exc
        if error is None:
            _mark(engine, row.id, status=DELIVERED, delivered_at=utcnow(), last_error="")
            report.delivered += 1
            report.outcomes.append((row.receiver, DELIVERED))
            report.by_receiver[row.receiver] = report.by_receiver.get(row.receiver, 0) + 1
            log.info(
                "notification delivered",
                extra={"event": "notification_delivered", "receiver": row.receiver, "notification": row.id},
            )
            continue
        attempts = row.attempts + 1
        too_old = (now - row.created_at).total_seconds() > policy.max_age_s
        if error.permanent or too_old:
            _mark(engine, row.id, status=FAILED, last_error=str(error)[:2000], attempts=attempts)
            report.failed += 1
            report.outcomes.append((row.receiver, FAILED))
            log.error(
                "notification failed for good",
                extra={"event": "notification_failed", "receiver": row.receiver, "error": str(error)},
            )
        else:
            delay = min(policy.backoff_max_s, policy.backoff_s * 2 ** (attempts - 1))
            _mark(
                engine,
                row.id,
                last_error=str(error)[:2000],
                attempts=attempts,
                next_attempt_at=now + timedelta(seconds=delay),
            )
            report.deferred += 1
            report.outcomes.append((row.receiver, "deferred"))
            log.warning(
                "notification deferred",
                extra={
                    "event": "notification_deferred",
                    "receiver": row.receiver,
                    "error": str(error),
                    "retry_in_s": delay,
                },
            )
        down.add(row.receiver)
    return report


def _mark(engine: Engine, row_id: int, **changes: Any) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(AlertNotification, row_id)
        if row is not None and row.status == PENDING:
            for name, value in changes.items():
                setattr(row, name, value)


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            select(AlertNotification.status, func.count()).group_by(AlertNotification.status)
        ).all()
    return {str(status): int(n) for status, n in rows}
