"""The database schema: table and column names are the contract analysts query.

Typed SQLAlchemy 2 models. Alembic migrations (`connectors/db/migrations`) create exactly this
schema; a test compares the two so they cannot drift apart. Types are portable between
PostgreSQL (production) and SQLite (the embedded default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Integer on SQLite so that autoincrement works there; BIGINT on PostgreSQL.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are UTC and time-zone aware on every database.

    SQLite stores no zone and hands back naive values; without this, code comparing a stored time
    with `utcnow()` works on PostgreSQL and raises on SQLite.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        dict[str, float]: JSON,
        list[str]: JSON,
    }


class Article(Base):
    """One row per news id; the text as the worker stored it."""

    __tablename__ = "articles"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime] = mapped_column(index=True)
    fetched_at: Mapped[datetime]
    lang: Mapped[str] = mapped_column(String(16), default="en")
    tickers: Mapped[list[str]] = mapped_column(default=list)
    # Indexed for "the latest N classified" (dashboard, README), which otherwise sorts every row.
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kafka_partition: Mapped[int | None]
    kafka_offset: Mapped[int | None] = mapped_column(BigInteger)


class ArticleTicker(Base):
    """Article-to-ticker pairs, so per-ticker series are plain joins on every database."""

    __tablename__ = "article_tickers"

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True, index=True)


class Prediction(Base):
    """What one model version said about one article for one instruction.

    `published_at` is the article's, copied: on PostgreSQL the table is partitioned by month of it
    (connectors/db/partitions.py), and a partitioned table's unique keys must hold it. Its primary
    key there is (id, published_at); `id` alone stays unique (one sequence).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint(
            "article_id", "instruction", "model_version", "published_at", name="uq_predictions_key"
        ),
        Index("ix_predictions_instruction_label", "instruction", "label"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    instruction: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    distribution: Mapped[dict[str, float]]
    zero_shot: Mapped[bool] = mapped_column(Boolean, default=False)
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    published_at: Mapped[datetime]


class EntityPrediction(Base):
    """What one model version said about one entity of one article for one entity-scoped
    instruction: "how is this news for ENTITY?". Partitioned as `predictions` is."""

    __tablename__ = "entity_predictions"
    __table_args__ = (
        # Named by hand: the convention's name is over PostgreSQL's 63 characters.
        UniqueConstraint(
            "article_id",
            "entity",
            "instruction",
            "model_version",
            "published_at",
            name="uq_entity_predictions_key",
        ),
        Index("ix_entity_predictions_ticker", "ticker", "instruction"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    entity: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str | None] = mapped_column(String(16))
    found: Mapped[bool] = mapped_column(Boolean, default=True)
    instruction: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    distribution: Mapped[dict[str, float]]
    zero_shot: Mapped[bool] = mapped_column(Boolean, default=False)
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    published_at: Mapped[datetime]


class CurrentPrediction(Base):
    """Each article's latest prediction per instruction, kept by triggers on `predictions`
    (connectors/db/current.py): what the views and the alert series read."""

    __tablename__ = "current_predictions"

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    instruction: Mapped[str] = mapped_column(String(100), primary_key=True)
    prediction_id: Mapped[int] = mapped_column(BigIntId)
    label: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    distribution: Mapped[dict[str, float]]
    zero_shot: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class CurrentEntityPrediction(Base):
    """Each entity's latest prediction per article and instruction, kept by triggers on
    `entity_predictions`."""

    __tablename__ = "current_entity_predictions"
    __table_args__ = (Index("ix_current_entity_predictions_ticker", "ticker", "instruction"),)

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(200), primary_key=True)
    instruction: Mapped[str] = mapped_column(String(100), primary_key=True)
    entity_prediction_id: Mapped[int] = mapped_column(BigIntId)
    kind: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str | None] = mapped_column(String(16))
    found: Mapped[bool] = mapped_column(Boolean)
    label: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    distribution: Mapped[dict[str, float]]
    zero_shot: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class RollupDirtyHour(Base):
    """UTC hours (epoch seconds // 3600) whose rollup rows are stale: marked by triggers in the
    writer's transaction, recounted by the rollup fold (connectors/db/rollups.py)."""

    __tablename__ = "rollup_dirty_hours"

    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class RollupItem(Base):
    """Each article's rows as the series count them (its topic; each ticker with the sentiment
    toward it; each entity with its own sentiment) and its hour: recomputed by triggers whenever
    the current answers change (connectors/db/rollup_items.py), so that an hour not folded yet is
    summed by one index range scan instead of per-article lookups."""

    __tablename__ = "rollup_items"
    __table_args__ = (Index(None, "dimension", "hour"), Index(None, "dimension", "published_at"))

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(8), primary_key=True)  # topic, ticker, entity
    series_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # an entity's; '' for topics and tickers
    ticker: Mapped[str] = mapped_column(String(16))  # an entity's; '' for topics and tickers
    hour: Mapped[int] = mapped_column(BigInteger)
    sentiment: Mapped[str | None] = mapped_column(String(100))
    sentiment_signed: Mapped[float | None] = mapped_column(Float)
    # Migration 0012, for the alert scan: the exact time (its buckets end at any second) and the
    # versions it judges a point by (the article's sentiment answer, a topic row's topic answer).
    # Nullable only because SQLite cannot add a NOT NULL column to a filled table; every row has
    # its publication time.
    published_at: Mapped[datetime | None] = mapped_column()
    sentiment_version: Mapped[str | None] = mapped_column(String(100))
    key_version: Mapped[str | None] = mapped_column(String(100))


class HourlyCounts:
    """The counts the hourly rollups keep per hour and key (connectors/db/rollups.py COUNTS)."""

    # First in the primary key (a mixin's columns otherwise follow the table's own): charts read
    # a range of hours by it.
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, sort_order=-1)
    items: Mapped[int] = mapped_column(BigInteger)
    negative: Mapped[int] = mapped_column(BigInteger)
    neutral: Mapped[int] = mapped_column(BigInteger)
    positive: Mapped[int] = mapped_column(BigInteger)
    rated: Mapped[int] = mapped_column(BigInteger)
    signed_sum: Mapped[float] = mapped_column(Float)


class RollupTopicHourly(HourlyCounts, Base):
    """Per UTC hour of publication and topic: what v_topic_sentiment_* sum."""

    __tablename__ = "rollup_topic_hourly"

    topic: Mapped[str] = mapped_column(String(100), primary_key=True)


class RollupTickerHourly(HourlyCounts, Base):
    """Per UTC hour of publication and ticker: what v_ticker_sentiment_* sum (sentiment toward
    the ticker where the model judged it, else the article's)."""

    __tablename__ = "rollup_ticker_hourly"

    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)


class RollupEntityHourly(HourlyCounts, Base):
    """Per UTC hour of publication and entity (name, kind, ticker; '' for none): what
    v_entity_sentiment_hourly|daily sum, each entity's own sentiment."""

    __tablename__ = "rollup_entity_hourly"

    entity: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)


class RollupScanMinute(Base):
    """Per UTC minute of publication, dimension (`ticker` or an instruction) and key, split by the
    answering model versions: what the alert scan's series sum (connectors/db/scan_rollup.py).
    Stale while the minute's hour is in `rollup_dirty_hours`."""

    __tablename__ = "rollup_scan_minutes"

    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    dimension: Mapped[str] = mapped_column(String(100), primary_key=True)
    series_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sentiment_version: Mapped[str] = mapped_column(String(100), primary_key=True)  # "" when unrated
    key_version: Mapped[str] = mapped_column(String(100), primary_key=True)  # "" for tickers
    items: Mapped[int] = mapped_column(BigInteger)
    negative: Mapped[int] = mapped_column(BigInteger)
    rated: Mapped[int] = mapped_column(BigInteger)
    signed_sum: Mapped[float] = mapped_column(Float)


class Label(Base):
    """A human label, with where it came from."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("text_hash", "instruction", "annotator"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    article_id: Mapped[str | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"), index=True)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    instruction: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(100))
    annotator: Mapped[str] = mapped_column(String(200), default="")
    provenance: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Instruction(Base):
    """An instruction is data: name, text, label set with descriptions, active flag."""

    __tablename__ = "instructions"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    scope: Mapped[str] = mapped_column(String(16), default="article", server_default="article")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ModelVersion(Base):
    """A registered model: its folder, status and the evidence for the decision about it."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # candidate, active, retired, rejected
    path: Mapped[str] = mapped_column(Text)
    encoder: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]


class InstructionHead(Base):
    """A head taught for one instruction on one model version's representation, and its verdict.

    Rows are never updated in place except for `status`: the decision that made a head active (or
    rejected it), its evidence and the label count stay readable after a newer head replaces it.
    At most one row per (instruction, model_version) is `active`.
    """

    __tablename__ = "instruction_heads"
    __table_args__ = (Index("ix_instruction_heads_lookup", "model_version", "status", "instruction"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    instruction: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # active, rejected, retired
    head: Mapped[dict[str, Any]]  # {"labels": [...], "weight": [[...]], "bias": [...]}
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]


class AlertRule(Base):
    """An operator's alert rule (overrides a shipped rule of the same name); `spec` is its YAML."""

    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    spec: Mapped[dict[str, Any]]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """One episode of a rule firing on one series key: pending → firing → resolved.

    `fingerprint` identifies the (rule, key) pair across episodes; at most one row per
    fingerprint is open (pending or firing). `notified_state` is what receivers were last told.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_state_fingerprint", "state", "fingerprint"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(100), index=True)
    dimension: Mapped[str] = mapped_column(String(100))
    series_key: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20))  # pending, firing, resolved
    severity: Mapped[str] = mapped_column(String(20), default="warning")
    summary: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    peak_score: Mapped[float] = mapped_column(Float, default=0.0)
    value: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    fired_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    below_since: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    notified_state: Mapped[str] = mapped_column(String(20), default="")


class AlertEvent(Base):
    """The history of an alert: every state change and notification, with the score at the time."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(20))  # pending, firing, resolved, cancelled, notified, silenced
    at: Mapped[datetime] = mapped_column(default=utcnow)
    score: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")


class AlertNotification(Base):
    """The outbox: one row per notification and receiver, written in the same transaction as the
    alert changes it reports, marked delivered only after the receiver accepted it."""

    __tablename__ = "alert_notifications"
    __table_args__ = (
        UniqueConstraint("idempotency_key", "receiver"),
        Index("ix_alert_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    group_key: Mapped[str] = mapped_column(String(300), default="")
    receiver: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class Silence(Base):
    """Suppresses notifications of matching alerts from `starts_at` until `ends_at`.

    `matchers` is a list of {"label", "op", "value"} with op "=", "!=", "=~" (regex, full match).
    """

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime] = mapped_column(index=True)


class DeadLetter(Base):
    """A message the worker could not store, mirrored from `news.dlq` for counting and replay."""

    __tablename__ = "dlq_records"
    __table_args__ = (UniqueConstraint("source_topic", "source_partition", "source_offset"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    source_topic: Mapped[str] = mapped_column(String(255))
    source_partition: Mapped[int]
    source_offset: Mapped[int] = mapped_column(BigInteger)
    message_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    reason_code: Mapped[str] = mapped_column(String(50), index=True)
    reason: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str] = mapped_column(String(50), default="")


class JobLock(Base):
    """One row per scheduled job: which process runs it now and when it last ran.

    Several scheduler processes may fire the same trigger; the row, taken with a row lock, decides
    which one runs it, and `running` keeps runs of one job from overlapping across processes.
    """

    __tablename__ = "job_locks"

    job_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    running: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_outcome: Mapped[str] = mapped_column(Text, default="")
