"""`finsent dlq replay`: send unresolved dead letters back through the pipeline.

Each dead letter is re-published to `news.raw` unchanged, with a header naming where it came
from. The worker resolves the DLQ record in the same transaction that deals with the replayed
message, so the DLQ count falls only for messages that were actually stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, select, tuple_
from sqlalchemy.orm import Session

from connectors.db.schema import DeadLetter
from connectors.kafka_io import make_producer, read_topic
from pipeline.service.batch import REPLAY_HEADER
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    scanned: int = 0
    replayed: int = 0
    skipped: int = 0


def replay_dead_letters(settings: Settings, engine: Engine, reason_code: str | None = None) -> ReplayReport:
    """Re-publish every unresolved dead letter (optionally of one reason) currently in the DLQ topic."""
    with Session(engine) as session:
        query = select(DeadLetter.source_topic, DeadLetter.source_partition, DeadLetter.source_offset).where(
            DeadLetter.resolved_at.is_(None)
        )
        if reason_code:
            query = query.where(DeadLetter.reason_code == reason_code)
        pending = {tuple(row) for row in session.execute(query)}
    report = ReplayReport()
    if not pending:
        return report
    producer = make_producer(settings.kafka_bootstrap, settings.kafka_max_message_bytes, "finsent-dlq-replay")
    seen: set[tuple[str, int, int]] = set()
    try:
        for message in read_topic(
            settings.kafka_bootstrap, settings.topic_dlq, settings.kafka_max_message_bytes
        ):
            report.scanned += 1
            headers = dict(message.headers or [])
            origin = (
                headers.get("finsent.source_topic", b"").decode(),
                int(headers.get("finsent.source_partition", b"-1")),
                int(headers.get("finsent.source_offset", b"-1")),
            )
            if origin not in pending or origin in seen:
                report.skipped += 1
                continue
            seen.add(origin)
            producer.send(
                settings.topic_raw,
                key=message.key,
                value=message.value,
                headers=[(REPLAY_HEADER, f"{origin[0]}:{origin[1]}:{origin[2]}".encode())],
            )
            report.replayed += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    log.info("dead letters replayed", extra=report.__dict__)
    return report


def unresolved_count(engine: Engine, origins: list[tuple[str, int, int]] | None = None) -> int:
    with Session(engine) as session:
        query = select(DeadLetter.id).where(DeadLetter.resolved_at.is_(None))
        if origins:
            query = query.where(
                tuple_(DeadLetter.source_topic, DeadLetter.source_partition, DeadLetter.source_offset).in_(
                    origins
                )
            )
        return len(session.scalars(query).all())
