"""`finsent dlq replay`: after the cause is fixed, dead letters are reprocessed, and the DLQ
count falls only for the ones that were actually stored."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from connectors.news_item import make_item
from pipeline.service.worker import declare_topics
from tests.conftest import Stack, WorkerProcess, counts, wait_for, wait_stored
from tests.kafka_helpers import raw_producer

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_replay_after_fix_stores_what_now_passes_and_keeps_what_still_fails(
    stack: Stack, workers: Callable[[], WorkerProcess]
) -> None:
    stack.overrides["max_body_chars"] = 1000
    settings = stack.settings()
    declare_topics(settings)
    good = [make_item(source="wire", title=f"Headline number {i}", body="short") for i in range(30)]
    long = [make_item(source="wire", title=f"Long story {i}", body="word " * 1000) for i in range(10)]
    broken = [b'{"schema_version": 1, "title": ' + str(i).encode() for i in range(5)]
    producer = raw_producer(stack.kafka)
    for item in good + long:
        producer.send(settings.topic_raw, key=item.id.encode(), value=item.to_json_bytes())
    for value in broken:
        producer.send(settings.topic_raw, key=None, value=value)
    producer.flush()
    producer.close()

    first = workers()
    assert wait_stored(stack, 45) == {"articles": 30, "predictions": 60, "dlq_records": 15}
    first.stop()

    stack.overrides["max_body_chars"] = 200_000  # the cause of the long bodies' rejection is fixed
    workers()
    replay = json.loads(stack.finsent("dlq", "replay").stdout.strip().splitlines()[-1])
    assert replay["replayed"] == 15
    wait_for(lambda: counts(stack)["articles"] == 40, 120, "the replayed long stories to be stored")
    wait_for(
        lambda: counts(stack)["dlq_records"] == 5, 60, "the still-broken messages to be re-dead-lettered"
    )
    assert int(stack.finsent("dlq", "count").stdout.strip()) == 5
    # Replaying again re-sends only what is still unresolved.
    again = json.loads(stack.finsent("dlq", "replay").stdout.strip().splitlines()[-1])
    assert again["replayed"] == 5
