"""Reading topics and consumer-group positions straight from the broker, for assertions."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.kafka_io import read_topic


def read_all(bootstrap: str, topic: str, max_bytes: int = 64 * 1024 * 1024) -> list[ConsumerRecord]:
    return list(read_topic(bootstrap, topic, max_bytes))


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages in `topic` not yet committed by `group` (all of them before its first commit)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        end = consumer.end_offsets(partitions)
        committed = admin.list_group_offsets({group: None}).get(group, {})
        return sum(end[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions)
    finally:
        consumer.close()
        admin.close()


def raw_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=32 * 1024 * 1024, linger_ms=10
    )


def stable_members(bootstrap: str, group: str) -> int:
    """Members of `group` once it is Stable (0 while it is still rebalancing)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group]).get(group) or {}
        return len(described.get("members") or []) if described.get("group_state") == "Stable" else 0
    finally:
        admin.close()
