"""A model change is not news: the scan compares like with like, and the backfill re-labels the
history its baselines read.

History: two days of hourly news on one topic, one headline in twelve negative, labelled by
model v1. Then a promotion: the new model (the stand-in, which calls everything negative) labels
the last hour. Judged against v1's baseline that hour is a huge negative shift; judged like with
like it is not judged until the backfill has re-labelled the baseline, and then it is no shift.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from alerts.rules import builtin_rules
from alerts.scan import evaluate, scan
from alerts.series import SeriesQuery, read_series
from connectors.db.writer import ArticleRow, PredictionRow, write_batch
from connectors.entities import CompanyDirectory, EntityRecogniser
from models import instruction_store
from models.classifier import StandInClassifier
from pipeline.jobs.backfill import backfill_horizon_s, count_due, run_backfill
from tests.current_helpers import assert_current_is_latest, assert_series_views_are_exact

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
TOPIC = "Analyst Update"  # the stand-in's answer for topic: the same key before and after
PER_HOUR = 12


def _article(hour: int, n: int, label: str, version: str) -> ArticleRow:
    published = NOW - timedelta(hours=hour, minutes=5 + 4 * n)
    return ArticleRow(
        id=f"h{hour:03d}-{n:02d}",
        source="wire",
        url=None,
        title=f"Broker note {hour} {n}",
        body="",
        published_at=published,
        fetched_at=published,
        lang="en",
        tickers=[],
        predictions=[
            PredictionRow("sentiment", label, 0.8, {label: 0.8}, version),
            PredictionRow("topic", TOPIC, 0.9, {TOPIC: 0.9}, version),
        ],
    )


def _history(engine: Engine) -> None:
    """Hours 1..50 ago by v1 (1 in 12 negative); the last hour by the new model."""
    old = [
        _article(h, n, "negative" if n == 0 else "neutral", "v1")
        for h in range(1, 51)
        for n in range(PER_HOUR)
    ]
    write_batch(engine, old)
    new = [_article(0, n, "negative", StandInClassifier.version) for n in range(PER_HOUR)]
    write_batch(engine, new)


def test_a_promotion_alone_fires_nothing_and_the_backfill_restores_the_baseline(engine: Engine) -> None:
    _history(engine)
    rule = next(r for r in builtin_rules() if r.name == "topic-negative-shift")

    # Without like-with-like the model change reads as news: the rule would fire.
    mixed = {o.key: o for o in evaluate(engine, rule, NOW)}
    assert mixed[TOPIC].score >= rule.fire_above, mixed[TOPIC]

    # Like with like (what the scan does): the new model's hour has no baseline of its own yet.
    report = scan(engine, [rule], [], NOW)
    assert dict(report.transitions) == {}, report.transitions
    pinned = {o.key: o for o in evaluate(engine, rule, NOW, version=StandInClassifier.version)}
    assert TOPIC not in pinned or math.isnan(pinned[TOPIC].score) or pinned[TOPIC].score < rule.resolve_below
    assert report.mixed_points == 48  # the topic's 48 baseline hours: v1 labelled them
    series = read_series(engine, rule.series_query(), NOW, StandInClassifier.version)
    row = series.index[TOPIC]
    assert series.mixed is not None and series.mixed[row, :-1].all() and not series.mixed[row, -1]

    # The backfill re-labels what the scan compares (the rule's window plus baseline), newest
    # first, in batches; killed after one batch it resumes where it stopped.
    horizon = backfill_horizon_s([rule])
    assert horizon == 49 * 3600
    since = NOW - timedelta(seconds=horizon)
    due = count_due(engine, since, StandInClassifier.version)
    assert due == 48 * PER_HOUR  # hours 1..48: those of hour 49 were published 49 h 5 min ago or more
    instructions = instruction_store.current(engine)
    recogniser = EntityRecogniser(CompanyDirectory(), frozenset())
    first = run_backfill(
        engine,
        StandInClassifier(),
        instructions,
        recogniser,
        horizon,
        batch_size=25,
        time_budget_s=0.0,
        now=NOW,
    )
    assert first.classified == 25 and not first.finished  # a budget of 0 s: one batch, then stop
    assert count_due(engine, since, StandInClassifier.version) == due - 25
    rest = run_backfill(
        engine, StandInClassifier(), instructions, recogniser, horizon, batch_size=25, now=NOW
    )
    assert rest.finished and rest.classified == due - 25 and rest.due_at_start == due - 25
    assert count_due(engine, since, StandInClassifier.version) == 0

    # v1's answers stay for comparison; the views show the new model's, and stay exact.
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT COUNT(*) FROM predictions WHERE model_version = 'v1'")).scalar()
    assert kept == 2 * 50 * PER_HOUR
    assert_current_is_latest(engine)
    assert_series_views_are_exact(engine)

    # Now one model labelled the whole comparison: judged, and no shift.
    series = read_series(engine, rule.series_query(), NOW, StandInClassifier.version)
    assert series.mixed is not None and not series.mixed.any()
    judged = {o.key: o for o in evaluate(engine, rule, NOW, version=StandInClassifier.version)}
    assert not math.isnan(judged[TOPIC].score) and judged[TOPIC].score < rule.resolve_below
    assert dict(scan(engine, [rule], [], NOW).transitions) == {}


def test_a_point_labelled_by_two_models_is_left_out_of_every_metric(engine: Engine) -> None:
    _history(engine)
    query = SeriesQuery("topic", 3600, 4)
    plain = read_series(engine, query, NOW)
    pinned = read_series(engine, query, NOW, StandInClassifier.version)
    assert plain.volume.sum() == 4 * PER_HOUR and plain.mixed is not None and not plain.mixed.any()
    assert pinned.mixed is not None and pinned.mixed.tolist() == [[True, True, True, False]]
    for metric in ("volume", "negative_volume", "negative_share", "mean_sentiment"):
        values, _ = pinned.matrix(metric)
        assert all(math.isnan(v) for v in values[0][:3]), metric
        assert not math.isnan(values[0][3]), metric


def test_the_scheduled_job_loads_no_model_until_a_promotion_leaves_history_behind(
    sqlite_url: str, tmp_path: Path
) -> None:
    from connectors.db.engine import make_engine
    from connectors.db.schema import JobLock
    from pipeline.jobs import scheduler
    from pipeline.settings import Settings

    settings = Settings(
        database_url=sqlite_url, home=tmp_path, classifier="standin", backfill_horizon_s=365 * 86400.0
    )
    engine = make_engine(sqlite_url)
    scheduler.build_scheduler(settings, engine)  # the jobs' context, as `finsent scheduler` sets it
    scheduler._backfill_model = None
    write_batch(engine, [_article(h, 0, "neutral", StandInClassifier.version) for h in range(3)])

    def outcome() -> str:
        with Session(engine) as session:
            return session.scalars(select(JobLock.last_outcome).where(JobLock.job_id == "backfill")).one()

    scheduler.backfill()
    assert outcome() == "nothing due" and scheduler._backfill_model is None
    # Older articles answered by v1 and the newest by the live model: the next run re-labels.
    write_batch(engine, [_article(h, n, "negative", "v1") for h in range(5, 8) for n in range(4)])
    write_batch(engine, [_article(0, 5, "negative", StandInClassifier.version)])
    with engine.begin() as conn:  # the next run may start at once (the job's minimum gap)
        conn.execute(text("UPDATE job_locks SET started_at = :t"), {"t": datetime(2000, 1, 1, tzinfo=UTC)})
    scheduler.backfill()
    done = json.loads(outcome())
    assert done["finished"] and done["classified"] == done["due_at_start"] == 12
    assert scheduler._backfill_model is not None
    assert count_due(engine, datetime(2000, 1, 1, tzinfo=UTC), StandInClassifier.version) == 0


def test_a_replayed_scan_judges_with_the_version_that_ran_then(sqlite_url: str) -> None:
    from alerts.series import live_version
    from connectors.db.engine import make_engine

    engine = make_engine(sqlite_url)
    _history(engine)
    swap = datetime(2026, 6, 3, 11, 0, tzinfo=UTC)
    with engine.begin() as conn:  # v1's articles were stored before the swap, the new hour's after
        conn.execute(text("UPDATE articles SET ingested_at = :at"), {"at": swap - timedelta(hours=1)})
        conn.execute(
            text("UPDATE articles SET ingested_at = :at WHERE id LIKE 'h000-%'"),
            {"at": swap + timedelta(minutes=30)},
        )
    assert live_version(engine, swap) == "v1"
    assert live_version(engine, NOW) == StandInClassifier.version
    assert live_version(engine, swap - timedelta(days=30)) == StandInClassifier.version  # nothing stored yet
