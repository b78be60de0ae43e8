"""The worker's metrics and health endpoints, scraped during a real run (Kafka + PostgreSQL)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.sources.files import FileSource
from pipeline.service.worker import declare_topics
from tests.conftest import Stack, WorkerProcess, free_port, wait_for, wait_stored
from tests.kafka_helpers import raw_producer

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def _status(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _publish(stack: Stack, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = raw_producer(stack.kafka)
    for key, value in messages:
        producer.send(stack.settings().topic_raw, key=key, value=value)
    producer.flush()
    producer.close()


def test_counters_move_by_exactly_the_items_processed_and_lag_reaches_zero(
    stack: Stack, workers: Callable[[], WorkerProcess], data_dir: Path
) -> None:
    port = free_port()
    stack.overrides.update({"worker_metrics_port": port, "lag_probe_interval_s": 1.0})
    settings = stack.settings()
    declare_topics(settings)
    items = list(FileSource(data_dir / "tfns_sentiment" / "train.csv", limit=300).items())
    good = [(item.id.encode(), item.to_json_bytes()) for item in {i.id: i for i in items}.values()]
    bad = [(None, b"{not json")] * 7 + [(None, json.dumps({"schema_version": 1}).encode())] * 5
    _publish(stack, good[:100] + bad)
    worker = workers()
    wait_stored(stack, 100 + len(bad))
    wait_for(
        lambda: total(scrape(port), "finsent_items_consumed_total") == 100 + len(bad), 60, "first scrape"
    )
    first = scrape(port)
    assert total(first, "finsent_items_classified_total") == 100
    assert total(first, "finsent_dead_letters_total", reason="invalid_json") == 7
    assert total(first, "finsent_dead_letters_total") == 12
    assert total(first, "finsent_rows_written_total", table="articles") == 100
    assert total(first, "finsent_rows_written_total", table="predictions") == 200
    assert total(first, "finsent_batch_size_sum") == 112
    assert total(first, "finsent_end_to_end_seconds_count") == 112
    assert total(first, "finsent_active_model_info", instruction="sentiment", version="standin-constant") == 1

    _publish(stack, good[100:])  # a second wave: the counters move by exactly its size
    rest = len(good) - 100
    wait_stored(stack, len(good) + len(bad))
    wait_for(
        lambda: total(scrape(port), "finsent_items_consumed_total") == len(good) + len(bad),
        60,
        "second scrape",
    )
    second = scrape(port)
    assert (
        total(second, "finsent_items_classified_total") - total(first, "finsent_items_classified_total")
        == rest
    )
    assert total(second, "finsent_dead_letters_total") == 12

    def lag_zero() -> bool:
        samples = scrape(port)
        lags = [
            v
            for (n, ls), v in samples.items()
            if n == "finsent_consumer_lag" and ("topic", settings.topic_raw) in ls
        ]
        return len(lags) == settings.topic_partitions and sum(lags) == 0

    wait_for(lag_zero, 60, "consumer lag 0 in the metrics")
    assert _status(port, "/healthz")[0] == 200
    code, body = _status(port, "/readyz")
    assert code == 200 and body["status"] == "ready" and body["checks"] == ["database", "kafka", "model"]
    assert worker.alive()

    status = json.loads(stack.finsent("status", "--json").stdout)
    assert status["lag"]["total"] == 0 and status["articles_total"] == len(good)
    assert status["throughput_per_min"]["15m"] == round(len(good) / 15, 1)
    assert status["dlq_unresolved"]["invalid_json"] == 7 and sum(status["dlq_unresolved"].values()) == 12
    assert status["open_alerts"] == [] and status["last_retrain_decision"] is None
    text = stack.finsent("status").stdout
    assert "lag: 0 messages" in text and "invalid_json=7" in text
