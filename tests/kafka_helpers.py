"""Reading topics and consumer-group positions straight from the broker, for assertions."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from connectors.kafka_io import LagProbe, read_topic


def read_all(bootstrap: str, topic: str, max_bytes: int = 64 * 1024 * 1024) -> list[ConsumerRecord]:
    return list(read_topic(bootstrap, topic, max_bytes))


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages in `topic` not yet committed by `group` (all of them before its first commit)."""
    probe = LagProbe(bootstrap, group)
    try:
        return sum(probe.lag([topic]).values())
    finally:
        probe.close()


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
