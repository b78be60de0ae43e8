"""The alert scan's minute rollup: series summed from it equal the series counted live from every
item of the window, whatever mix of folded and unfolded hours, model versions, ticker-directed
answers and evaluation instants (bucket edges inside minutes, on minutes, on hours)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine, text

from alerts.series import SeriesQuery, SeriesSet, read_series
from connectors.db import rollups
from connectors.db.engine import make_engine
from connectors.db.writer import ArticleRow, EntityPredictionRow, PredictionRow, write_batch

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
TOPICS = ["Earnings", "Macro", "M&A | Investments", "Markets"]
TICKERS = ["AAPL", "F", "TSLA", "BA", "XOM"]
SENTIMENTS = ["negative", "neutral", "positive"]
QUERIES = [SeriesQuery("ticker", 1800, 49), SeriesQuery("topic", 3600, 49), SeriesQuery("topic", 600, 3)]


def _articles(
    rng: random.Random, count: int, newest: datetime, span_s: float, version: str
) -> list[ArticleRow]:
    rows = []
    for _ in range(count):
        at = newest - timedelta(seconds=rng.uniform(0, span_s))
        tickers = rng.sample(TICKERS, rng.choice([0, 0, 1, 2]))
        sentiment = rng.choice(SENTIMENTS)
        probs = {s: 0.1 for s in SENTIMENTS} | {sentiment: 0.8}
        predictions = [PredictionRow("topic", rng.choice(TOPICS), 0.9, {"x": 0.9}, version)]
        if rng.random() < 0.9:  # some articles have no sentiment answer: counted, not rated
            predictions.append(PredictionRow("sentiment", sentiment, 0.8, probs, version))
        toward = [
            EntityPredictionRow(f"Company {t}", "company", t, True, "sentiment", label, 0.7, probs, version)
            for t in tickers
            if rng.random() < 0.6
            for label in [rng.choice(SENTIMENTS)]
        ]
        rows.append(
            ArticleRow(
                id=f"r{rng.getrandbits(48):x}",
                source="t",
                url=None,
                title="headline",
                body="",
                published_at=at,
                fetched_at=at,
                lang="en",
                tickers=tickers,
                predictions=predictions,
                entity_predictions=toward,
            )
        )
    return rows


def _relabel(article: ArticleRow, version: str) -> ArticleRow:
    """The same article answered by another model version (a promotion's backfill)."""
    flip = {"negative": "positive", "positive": "neutral", "neutral": "negative"}
    return replace(
        article,
        predictions=[
            replace(p, label=flip.get(p.label, p.label), model_version=version) for p in article.predictions
        ],
        entity_predictions=[
            replace(e, label=flip[e.label], model_version=version) for e in article.entity_predictions
        ],
    )


def _same(rolled: SeriesSet, live: SeriesSet, what: str) -> None:
    assert rolled.keys == live.keys, what
    for name in ("volume", "negative", "rated"):
        assert np.array_equal(getattr(rolled, name), getattr(live, name)), f"{what}: {name}"
    assert np.allclose(rolled.signed_sum, live.signed_sum, atol=1e-9), f"{what}: signed_sum"
    assert np.array_equal(rolled.mixed, live.mixed), f"{what}: mixed"


def _compare_everywhere(engine: Engine, rng: random.Random, label: str) -> int:
    instants = [NOW, NOW - timedelta(minutes=7), NOW - timedelta(hours=5)]  # on an hour, on minutes
    instants += [NOW - timedelta(seconds=rng.uniform(0, 86400)) for _ in range(6)]
    compared = 0
    for now in instants:
        for query in QUERIES:
            for version in (None, "v1", "v2"):
                rolled = read_series(engine, query, now, version)
                live = read_series(engine, query, now, version, rollup=False)
                _same(rolled, live, f"{label}: {query} at {now.isoformat()} version {version}")
                compared += int(live.volume.sum())
    return compared


def test_series_from_the_minute_rollup_equal_the_live_count(engine: Engine) -> None:
    rng = random.Random(17)
    history = _articles(rng, 400, NOW, 3 * 86400, "v1")
    for start in range(0, len(history), 100):
        write_batch(engine, history[start : start + 100])
    rollups.fold_all(engine)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*), SUM(items) FROM rollup_scan_minutes")).one()
        dirty = conn.execute(text("SELECT COUNT(*) FROM rollup_dirty_hours")).scalar_one()
    assert dirty == 0 and stored[0] > 300  # every hour folded: the minutes come from the rollup
    assert _compare_everywhere(engine, rng, "all folded") > 1000

    # Live traffic and a promotion's backfill dirty some hours: those are counted live, the
    # rest still from the rollup; the mixed-version points must match too.
    write_batch(engine, _articles(rng, 60, NOW, 2 * 3600, "v2"))
    write_batch(engine, [_relabel(a, "v2") for a in rng.sample(history, 80)])
    # A head promoted alone (`finsent teach`): the sentiment re-answered by v2, the topic still
    # v1's, so a topic point judged by v2 leaves them out through the topic's version alone.
    sentiment_only = [
        replace(a, predictions=[p for p in _relabel(a, "v2").predictions if p.instruction == "sentiment"])
        for a in rng.sample(history, 40)
    ]
    write_batch(engine, sentiment_only)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM rollup_dirty_hours")).scalar_one() > 10
    _compare_everywhere(engine, rng, "some hours dirty")
    rollups.fold_all(engine)
    _compare_everywhere(engine, rng, "folded again")

    # The rollup is really read: a stored minute made wrong makes the series wrong.
    with engine.begin() as conn:
        minute = conn.execute(
            text(
                "SELECT minute FROM rollup_scan_minutes WHERE dimension = 'topic' "
                "AND minute > :lo ORDER BY minute LIMIT 1"
            ),
            {"lo": int((NOW - timedelta(hours=20)).timestamp() // 60)},
        ).scalar_one()
        conn.execute(
            text("UPDATE rollup_scan_minutes SET items = items + 100 WHERE minute = :m"), {"m": minute}
        )
    query = SeriesQuery("topic", 3600, 49)
    rolled, live = read_series(engine, query, NOW), read_series(engine, query, NOW, rollup=False)
    assert rolled.volume.sum() == live.volume.sum() + 100


def test_postgresql_counts_every_item_as_sqlite_does(sqlite_url: str, pg_url: str) -> None:
    """The live count is written twice: probes per item on PostgreSQL (its planner hashed whole
    tables for the joins), joins on SQLite. The same rows in both give the same series, for
    every dimension the scan reads, every version filter, and several articles' answers
    replaced by another model's."""
    rng = random.Random(23)
    history = _articles(rng, 300, NOW, 2 * 86400, "v1")
    relabelled = [_relabel(a, "v2") for a in rng.sample(history, 60)]
    engines = [make_engine(sqlite_url), make_engine(pg_url)]
    try:
        for engine in engines:
            write_batch(engine, history)
            write_batch(engine, relabelled)
        instants = [NOW, NOW - timedelta(minutes=7)] + [
            NOW - timedelta(seconds=rng.uniform(0, 86400)) for _ in range(3)
        ]
        items = 0
        for now in instants:
            for query in [*QUERIES, SeriesQuery("sentiment", 3600, 49)]:
                for version in (None, "v2"):
                    on_sqlite, on_postgresql = (
                        read_series(engine, query, now, version, rollup=False) for engine in engines
                    )
                    _same(on_postgresql, on_sqlite, f"{query} at {now.isoformat()} version {version}")
                    items += int(on_sqlite.volume.sum())
        assert items > 3000
    finally:
        for engine in engines:
            engine.dispose()
