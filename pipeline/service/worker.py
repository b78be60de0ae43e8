"""The Faust worker: `news.raw` → batch → database → `news.classified` / `news.dlq` → ack.

Checkpoint-then-commit: a batch's events are acked (and so become committable offsets) only
after its rows are committed in the database and its dead letters and classified messages are
acknowledged by Kafka. A crash anywhere before that redelivers the batch; the idempotent writes
turn the redelivery into no new rows.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import faust
from sqlalchemy import Engine

from connectors.db.engine import make_engine, ping_database
from connectors.db.migrate import require_current
from connectors.kafka_io import LagProbe, TopicSpec, ensure_topics, ping_kafka
from pipeline.service.batch import BatchOutcome, BatchProcessor, Limits, RawRecord, classified_message
from pipeline.service.label_stream import LabelBatchProcessor
from pipeline.service.runtime import ClassifierProvider, InstructionProvider, entity_recogniser
from pipeline.settings import Settings
from pipeline.telemetry import logs, metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


def _kafka_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def build_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    classifier: ClassifierProvider | None = None,
    instructions: InstructionProvider | None = None,
) -> faust.App:
    """Wire a Faust app whose one agent runs the batch pipeline."""
    engine = engine or make_engine(settings.database_url)
    classifier = classifier or ClassifierProvider.from_settings(settings, engine)
    instructions = instructions or InstructionProvider(engine, settings.instruction_refresh_s)
    datadir = settings.home / "faust" / settings.consumer_group
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.consumer_group,
        broker=_kafka_url(settings.kafka_bootstrap),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(datadir),
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_bind="127.0.0.1",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_max_poll_interval=settings.kafka_max_poll_interval_s,
        # Faust hands each fetched record set to the stream buffer in one go and stops fetching
        # while the buffer is full; aiokafka counts that as "not polling" and, after the poll
        # interval, silently leaves the group. Small record sets keep a slow worker polling.
        broker_max_poll_records=settings.batch_max_items,
        consumer_group_instance_id=settings.worker_instance_id or None,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=settings.kafka_max_message_bytes,
        producer_max_request_size=settings.kafka_max_message_bytes,
        producer_acks=-1,
        topic_disable_leader=True,
        stream_buffer_maxsize=max(2 * settings.batch_max_items, 512),
    )
    raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw")
    stop_flag = threading.Event()
    processor = BatchProcessor(
        engine,
        classifier.current,
        instructions.current,
        Limits(settings.max_title_chars, settings.max_body_chars),
        db_retry_max_s=settings.db_retry_max_s,
        stop_requested=stop_flag.is_set,
        recogniser=entity_recogniser(settings),
    )
    # One thread: batches are processed in order, and torch uses its own intra-op threads.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsent-batch")

    async def consume(
        stream: faust.StreamT[Any],
        process: Callable[[list[RawRecord]], T],
        outcome_of: Callable[[T], BatchOutcome],
        report: Callable[[T, int, float], None],
    ) -> None:
        """The at-least-once core of both streams: take a batch unacked, process it in the worker
        thread, wait until its dead letters and results are acknowledged by Kafka, then ack it."""
        # noack_take is on the concrete Stream (not on the StreamT protocol): it hands us the
        # events unacked, so offsets become committable only after the batch is stored.
        batches = cast(faust.Stream[Any], stream).noack_take(
            settings.batch_max_items, within=settings.batch_within_s
        )
        async for events in batches:
            records = [_record(event) for event in events]
            result = await asyncio.get_running_loop().run_in_executor(pool, process, records)
            committed = time.time()
            await _publish(app, settings, outcome_of(result))
            published_s = time.time() - committed
            for event in events:
                await stream.ack(event)
            report(result, len(records), published_s)
            _observe_batch(records, committed)

    @app.agent(raw, name="classify")
    async def classify(stream: faust.StreamT[Any]) -> None:
        await consume(stream, processor.process, lambda outcome: outcome, _log_batch)

    labels_topic = app.topic(settings.topic_labels, key_serializer="raw", value_serializer="raw")
    label_processor = LabelBatchProcessor(
        engine, instructions.current, db_retry_max_s=settings.db_retry_max_s, stop_requested=stop_flag.is_set
    )

    @app.agent(labels_topic, name="labels")
    async def store_labels(stream: faust.StreamT[Any]) -> None:
        await consume(stream, label_processor.process, lambda result: result[1], _log_labels)

    @app.task
    async def prepare() -> None:
        require_current(engine)
        # Load the model before the first batch: readiness says "model loaded" only then.
        await asyncio.get_running_loop().run_in_executor(pool, classifier.current)

    lag_probe: list[LagProbe] = []

    @app.timer(interval=settings.lag_probe_interval_s)
    async def probe_lag() -> None:
        def measure() -> dict[tuple[str, int], int]:
            if not lag_probe:
                lag_probe.append(LagProbe(settings.kafka_bootstrap, settings.consumer_group))
            return lag_probe[0].lag([settings.topic_raw, settings.topic_labels])

        try:
            lags = await asyncio.get_running_loop().run_in_executor(None, measure)
        except Exception as exc:  # a failed probe leaves the last values; it never stops the worker
            log.warning("consumer lag probe failed", extra={"event": "lag_probe_failed", "error": repr(exc)})
            return
        for (topic, partition), lag in lags.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    @app.on_partitions_assigned.connect
    async def count_assignment(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        assigned: set[Any] = args[0] if args else set()
        # Each assignment after the first is a rebalance: the count is how a storm shows.
        metrics.PARTITION_ASSIGNMENTS.inc()
        log.info(
            "partitions assigned",
            extra={
                "event": "partitions_assigned",
                "partitions": sorted(f"{t.topic}:{t.partition}" for t in assigned),
            },
        )

    app.finsent_checks = {  # type: ignore[attr-defined]
        "database": lambda: ping_database(engine),
        "kafka": lambda: ping_kafka(settings.kafka_bootstrap),
        "model": lambda: _require(classifier.loaded, "the model is still loading"),
    }

    app.finsent_stop_flag = stop_flag  # type: ignore[attr-defined]
    return app


def _record(event: faust.EventT[Any]) -> RawRecord:
    message = event.message
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key if isinstance(message.key, bytes | None) else str(message.key).encode(),
        value=message.value if isinstance(message.value, bytes | None) else bytes(message.value),
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        headers=tuple((str(k), bytes(v or b"")) for k, v in _headers(message.headers)),
    )


def _headers(headers: Any) -> list[tuple[Any, Any]]:
    if not headers:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


async def _publish(app: faust.App, settings: Settings, outcome: BatchOutcome) -> None:
    """Send dead letters and classified results; return once Kafka acknowledged every one."""
    producer = app.producer
    futures = []
    now = datetime.now(UTC).isoformat().encode()
    for dead in outcome.dead:
        record = dead.record
        headers = [
            ("finsent.reason_code", dead.code.encode()),
            ("finsent.reason", dead.reason.encode("utf-8", "replace")[:1000]),
            ("finsent.source_topic", record.topic.encode()),
            ("finsent.source_partition", str(record.partition).encode()),
            ("finsent.source_offset", str(record.offset).encode()),
            ("finsent.dead_lettered_at", now),
        ]
        futures.append(
            await producer.send(
                settings.topic_dlq, record.key, record.value, partition=None, timestamp=None, headers=headers
            )
        )
    for stored in outcome.stored:
        value = json.dumps(classified_message(stored, outcome.model_version), ensure_ascii=False).encode()
        futures.append(
            await producer.send(
                settings.topic_classified,
                stored.item.id.encode(),
                value,
                partition=None,
                timestamp=None,
                headers=None,
            )
        )
    if futures:
        await asyncio.gather(*futures)


def _observe_batch(records: list[RawRecord], committed: float) -> None:
    metrics.BATCH_SIZE.observe(len(records))
    for topic, n in Counter(record.topic for record in records).items():
        metrics.ITEMS_CONSUMED.labels(topic).inc(n)
    for record in records:
        if record.timestamp_ms:
            metrics.END_TO_END_SECONDS.observe(max(0.0, committed - record.timestamp_ms / 1000))


_reported_models: set[tuple[str, str]] = set()  # (instruction, version) pairs the gauge shows


def _report_active_model(instructions: Iterable[str], version: str) -> None:
    """Change the gauge only when the model changes, so that no scrape finds it empty."""
    current = {(name, version) for name in instructions}
    for labels in current - _reported_models:
        metrics.ACTIVE_MODEL.labels(*labels).set(1)
    for labels in _reported_models - current:
        metrics.ACTIVE_MODEL.remove(*labels)
    _reported_models.clear()
    _reported_models.update(current)


def _count_outcome(outcome: BatchOutcome) -> None:
    for dead in outcome.dead:
        metrics.DEAD_LETTERS.labels(dead.code).inc()
    write = outcome.write
    if write is not None:
        metrics.ROWS_WRITTEN.labels("articles").inc(write.articles_inserted)
        metrics.ROWS_WRITTEN.labels("predictions").inc(write.predictions_inserted)
        metrics.ROWS_WRITTEN.labels("dlq_records").inc(write.dead_letters_inserted)


def _require(condition: Callable[[], bool], message: str) -> None:
    if not condition():
        raise RuntimeError(message)


def _log_labels(result: tuple[int, BatchOutcome], size: int, published_s: float) -> None:
    stored, outcome = result
    metrics.LABELS_STORED.inc(stored)
    _count_outcome(outcome)
    log.info(
        "labels stored",
        extra={"event": "labels_stored", "size": size, "stored": stored, "dead_lettered": len(outcome.dead)},
    )


def _log_batch(outcome: BatchOutcome, size: int, published_s: float) -> None:
    write = outcome.write
    metrics.ITEMS_CLASSIFIED.inc(len(outcome.stored))
    metrics.CLASSIFY_SECONDS.observe(outcome.classify_s)
    metrics.WRITE_SECONDS.observe(outcome.write_s)
    _count_outcome(outcome)
    if outcome.stored:
        _report_active_model(outcome.stored[0].answer.article, outcome.model_version)
    log.info(
        "batch stored",
        extra={
            "size": size,
            "stored": len(outcome.stored),
            "dead_lettered": len(outcome.dead),
            "articles_new": write.articles_inserted if write else 0,
            "entity_predictions_new": write.entity_predictions_inserted if write else 0,
            "model_version": outcome.model_version,
            "classify_s": round(outcome.classify_s, 4),
            "write_s": round(outcome.write_s, 4),
            "publish_s": round(published_s, 4),
        },
    )


def declare_topics(settings: Settings) -> None:
    ensure_topics(
        settings.kafka_bootstrap,
        [
            TopicSpec(settings.topic_raw, settings.topic_partitions),
            TopicSpec(settings.topic_dlq, settings.topic_partitions),
            TopicSpec(settings.topic_classified, settings.topic_partitions),
            TopicSpec(settings.topic_labels, settings.topic_partitions),
        ],
        settings.kafka_max_message_bytes,
    )


def _return_big_buffers_to_the_os() -> None:
    """glibc raises its mmap threshold each time it frees a large block, so later multi-megabyte
    messages come from the heap, and the heap keeps their memory after they are gone. A fixed
    threshold keeps such buffers mmapped: once freed, they go back to the system."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1024 * 1024)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; Faust commits acked offsets on the way out."""
    _return_big_buffers_to_the_os()
    declare_topics(settings)
    app = build_app(settings)
    metrics.serve(settings.metrics_host, settings.worker_metrics_port, app.finsent_checks)  # type: ignore[attr-defined]
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.lower(),
        logging_config=logs.dict_config(settings.log_level, settings.log_format),
        quiet=True,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    finally:
        app.finsent_stop_flag.set()  # type: ignore[attr-defined]
