"""Kafka plumbing shared by producers, the worker and the tools: topics and a JSON producer.

Values are plain UTF-8 JSON (readable by any Kafka client); keys are article ids, so every
version of one article lands on one partition, in order.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError

from connectors.news_item import NewsItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec], max_message_bytes: int) -> None:
    """Create missing topics (idempotent); existing topics are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="finsent-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=1,
                topic_configs={"max.message.bytes": str(max_message_bytes)},
            )
            for spec in topics
            if spec.name not in existing
        ]
        if wanted:
            # Another process may create a topic between our list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
    finally:
        admin.close()


def ping_kafka(bootstrap: str) -> None:
    """Readiness: the first bootstrap server accepts a TCP connection (raises otherwise)."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
        pass


def read_topic(bootstrap: str, topic: str, max_message_bytes: int) -> Iterator[ConsumerRecord]:
    """Every record of `topic`, from the beginning up to its end offsets at the time of the call.

    No consumer group: nothing is committed, so reading never disturbs the workers.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=max_message_bytes,
        fetch_max_bytes=max_message_bytes,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for tp, records in consumer.poll(timeout_ms=1000, max_records=1000).items():
                yield from (record for record in records if record.offset < end[tp])
    finally:
        consumer.close()


def make_producer(bootstrap: str, max_message_bytes: int, client_id: str = "finsent-ingest") -> KafkaProducer:
    """A durable producer: all replicas acknowledge, retries keep order (idempotence)."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type="gzip",
        max_request_size=max_message_bytes,
        retries=2**31 - 1,
        delivery_timeout_ms=120_000,
    )


@dataclass(frozen=True)
class OutRecord:
    """One message to produce; headers are (name, bytes) pairs as Kafka carries them."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class NewsProducer:
    """Publishes validated items to `news.raw`; `publish` returns once Kafka holds them all."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def publish(self, items: Sequence[NewsItem], timeout_s: float = 120.0) -> int:
        return self.publish_records(
            [OutRecord(self._topic, item.id.encode(), item.to_json_bytes()) for item in items], timeout_s
        )

    def publish_records(self, records: Sequence[OutRecord], timeout_s: float = 120.0) -> int:
        """Send to any topics; returns once Kafka acknowledged every record (raises otherwise)."""
        futures = [
            self._producer.send(r.topic, key=r.key, value=r.value, headers=list(r.headers) or None)
            for r in records
        ]
        self._producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)  # raises KafkaError for a message Kafka did not take
        return len(futures)

    def publish_raw(self, key: bytes | None, value: bytes, timeout_s: float = 60.0) -> None:
        """Send bytes as they are (replaying dead letters, injecting test input)."""
        self._producer.send(self._topic, key=key, value=value).get(timeout=timeout_s)

    def close(self) -> None:
        try:
            self._producer.flush(timeout=30)
        except KafkaError as exc:
            log.warning("producer flush on close failed", extra={"error": str(exc)})
        self._producer.close(timeout=30)


class LagProbe:
    """Consumer lag per partition: the broker's end offsets minus the group's committed offsets.

    Reads only (an admin client and a group-less consumer), so probing never joins or disturbs
    the group. A partition the group has not committed on yet counts from offset 0 (the workers
    start from the earliest offset).
    """

    def __init__(
        self, bootstrap: str, group: str, client_id: str = "finsent-lag", bootstrap_timeout_s: float = 30.0
    ) -> None:
        self._group = group
        timeout_ms = int(bootstrap_timeout_s * 1000)
        self._admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=client_id, bootstrap_timeout_ms=timeout_ms
        )
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            client_id=client_id,
            bootstrap_timeout_ms=timeout_ms,
        )

    def lag(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            return {}
        end = self._consumer.end_offsets(partitions)
        committed = self._admin.list_group_offsets({self._group: None}).get(self._group, {})
        lags = {}
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lags[(tp.topic, tp.partition)] = max(0, end[tp] - done)
        return lags

    def close(self) -> None:
        with contextlib.suppress(KafkaError):
            self._consumer.close()
            self._admin.close()
