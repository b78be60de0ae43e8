"""Series views read hourly rollups: exact before and after folding, whatever changes the
answers (new articles, a second model version, links added, articles deleted or moved)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from connectors.db import rollup_items, rollups
from connectors.db.writer import ArticleRow, EntityPredictionRow, PredictionRow, write_batch
from tests.current_helpers import assert_series_views_are_exact

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
LABELS = ("negative", "neutral", "positive")


def _article(i: int, version: str, shift: int = 0) -> ArticleRow:
    """Article i: published in hour i % 30 (minute i % 60, so several share an hour and two
    days are spanned), a topic, a sentiment, tickers for some and a sentiment toward one."""
    label = LABELS[(i + shift) % 3]
    toward = LABELS[(i + shift + 1) % 3]
    tickers = ["F", "TSLA"][: i % 3]
    published = T0 + timedelta(hours=(i % 30) + 0.5 * (i % 2), minutes=i % 60 / 2)
    return ArticleRow(
        id=f"a{i}",
        source="t",
        url=None,
        title=f"Headline {i}",
        body="",
        published_at=published,
        fetched_at=published,
        lang="en",
        tickers=tickers,
        predictions=[
            PredictionRow("sentiment", label, 0.8, {label: 0.8, "positive": 0.1 * (i % 5)}, version),
            PredictionRow("topic", f"topic{i % 4}", 0.9, {f"topic{i % 4}": 0.9}, version),
        ],
        entity_predictions=(
            [
                EntityPredictionRow(
                    "Ford", "company", "F", True, "sentiment", toward, 0.7, {toward: 0.7}, version
                )
            ]
            if tickers
            else []
        )
        # An entity without a ticker: the entity rollup keys it with '' and its views show NULL.
        + (
            [
                EntityPredictionRow(
                    "Brent crude", "commodity", None, True, "sentiment", label, 0.6, {label: 0.6}, version
                )
            ]
            if i % 4 == 0
            else []
        ),
    )


def _view(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql)).all()]


def test_series_views_stay_exact_through_folds_and_every_kind_of_change(engine: Engine) -> None:
    write_batch(engine, [_article(i, "v1") for i in range(80)])
    assert rollups.dirty_hours(engine) == 30  # nothing folded yet: every hour counted live
    compared = assert_series_views_are_exact(engine)
    assert compared > 60
    folded_items = _view(engine, "SELECT SUM(items) FROM v_topic_sentiment_daily")[0][0]
    assert int(folded_items) == 80  # type: ignore[call-overload]

    # A redelivered batch writes nothing and marks nothing.
    write_batch(engine, [_article(i, "v1") for i in range(10)])
    assert rollups.dirty_hours(engine) == 0

    # A new model version answers a third of the articles differently (a hot swap, a backfill).
    write_batch(engine, [_article(i, "v2", shift=1) for i in range(0, 80, 3)])
    assert 0 < rollups.dirty_hours(engine) <= 30
    assert_series_views_are_exact(engine)

    # Bodies emptied by retention change no count and mark nothing.
    with engine.begin() as conn:
        conn.execute(text("UPDATE articles SET body = ''"))
    assert rollups.dirty_hours(engine) == 0

    # Links added, an article deleted, one moved to another hour: each marks what it touches.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO article_tickers (article_id, ticker) VALUES ('a3', 'NVDA')"))
        conn.execute(text("DELETE FROM articles WHERE id = 'a5'"))
        conn.execute(
            text("UPDATE articles SET published_at = :t WHERE id = 'a7'"), {"t": T0 + timedelta(days=3)}
        )
    assert rollups.dirty_hours(engine) == 4  # a3's, a5's, a7's old and new hours
    assert_series_views_are_exact(engine)
    tickers = {str(row[0]) for row in _view(engine, "SELECT ticker FROM v_ticker_sentiment_daily")}
    assert tickers == {"F", "TSLA", "NVDA"}
    assert int(_view(engine, "SELECT SUM(items) FROM v_topic_sentiment_hourly")[0][0]) == 79  # type: ignore[call-overload]


def test_a_fold_counts_only_the_hours_it_took(engine: Engine) -> None:
    write_batch(engine, [_article(i, "v1") for i in range(40)])
    assert rollups.fold(engine, max_hours=7) == 7
    assert rollups.dirty_hours(engine) == 23
    with engine.connect() as conn:
        stored_hours = conn.execute(text("SELECT COUNT(DISTINCT hour) FROM rollup_topic_hourly")).scalar()
    assert stored_hours == 7
    assert_series_views_are_exact(engine)  # half folded is as exact as all folded


def test_the_dashboard_reads_whole_hour_buckets_from_the_rollups(engine: Engine) -> None:
    from pipeline.web.dashboard import DashboardData

    now = datetime.now(UTC)
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    rows = []
    for back in range(2, 6):  # four whole hours, three articles each, the first negative
        for n in range(3):
            published = hour_start - timedelta(hours=back) + timedelta(minutes=10 + n)
            label = "negative" if n == 0 else "neutral"
            rows.append(
                replace(
                    _article(100 * back + n, "v1"),
                    published_at=published,
                    fetched_at=published,
                    tickers=["F"],
                    predictions=[
                        PredictionRow("sentiment", label, 0.8, {label: 0.8}, "v1"),
                        PredictionRow("topic", "Earnings", 0.9, {"Earnings": 0.9}, "v1"),
                    ],
                    entity_predictions=[],
                )
            )
    write_batch(engine, rows)
    dashboard = DashboardData(engine)
    for folded in (False, True):
        if folded:
            rollups.fold_all(engine)
        hourly = dashboard.series("ticker", "F", 3600, 24 * 3600.0)
        assert hourly["volume"][-7:] == [0, 3, 3, 3, 3, 0, 0], hourly["volume"]
        assert hourly["negative_share"][-6:-2] == [round(1 / 3, 4)] * 4
        assert hourly["t"][-1] == (int(now.timestamp()) // 3600 + 1) * 3600  # the hour in progress
        live = dashboard.series("ticker", "F", 1800, 24 * 3600.0)  # not whole hours: counted live
        assert sum(live["volume"]) == sum(hourly["volume"]) == 12
        topics = dashboard.series("topic", "", 7200, 24 * 3600.0)
        assert sum(topics["volume"]) == 12
        assert dashboard.keys("topic", 24 * 3600.0) == [{"key": "Earnings", "items": 12}]
    # A topic instruction of the operator's own is not in the topic rollup: its labels, not the
    # built-in topic's, are the keys.
    sectors = [
        replace(row, id=f"s{i}", predictions=[PredictionRow("sector", s, 0.9, {s: 0.9}, "v1")])
        for i, (row, s) in enumerate(zip(rows, ["Banks", "Banks", "Tech"], strict=False))
    ]
    write_batch(engine, sectors)
    assert DashboardData(engine, topic_instruction="sector").keys("topic", 24 * 3600.0) == [
        {"key": "Banks", "items": 2},
        {"key": "Tech", "items": 1},
    ]


def test_the_dashboard_ranks_keys_by_items_over_stored_and_live_hours(engine: Engine) -> None:
    from pipeline.web.dashboard import DashboardData

    hour_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def published(back: int, tickers: list[str], first: int) -> list[ArticleRow]:
        when = hour_start - timedelta(hours=back) + timedelta(minutes=5)
        return [
            replace(_article(first + n, "v1"), published_at=when, fetched_at=when, tickers=[ticker])
            for n, ticker in enumerate(tickers)
        ]

    write_batch(engine, published(3, ["F", "F", "F", "TSLA", "GM"], 0))
    assert rollups.fold_all(engine) >= 1  # the older hour stored, the newer one counted live
    write_batch(engine, published(2, ["TSLA", "TSLA", "TSLA", "AAPL"], 10))
    assert rollups.dirty_hours(engine) == 1
    dashboard = DashboardData(engine)
    # Most items first, ties by key, cut at the limit.
    assert dashboard.keys("ticker", 24 * 3600.0, limit=4) == [
        {"key": "TSLA", "items": 4},
        {"key": "F", "items": 3},
        {"key": "AAPL", "items": 1},
        {"key": "GM", "items": 1},
    ]
    assert dashboard.keys("ticker", 24 * 3600.0, limit=1) == [{"key": "TSLA", "items": 4}]
    # Only hours from the one the window starts in: the older hour is outside two hours.
    assert dashboard.keys("ticker", 2 * 3600.0 - 60, limit=4) == [
        {"key": "TSLA", "items": 3},
        {"key": "AAPL", "items": 1},
    ]


@pytest.mark.postgres
def test_the_migrations_fill_lays_the_items_out_in_hour_order(pg_engine: Engine) -> None:
    """Every reader of `rollup_items` reads one dimension's rows of an hour or a time range: in
    article order (the views' order), an hour's rows lay one per heap page at 10 M articles."""
    # Newest hour first, one batch each: the writer's triggers leave the rows in reverse hours.
    for i in reversed(range(30)):
        write_batch(pg_engine, [_article(i, "v1")])
    with pg_engine.begin() as conn:
        for statement in rollup_items.fill_sql("postgresql"):
            conn.execute(text(statement))
    laid_out: dict[str, list[int]] = {}
    for dimension, hour in _view(pg_engine, f"SELECT dimension, hour FROM {rollups.ITEMS} ORDER BY ctid"):
        laid_out.setdefault(str(dimension), []).append(int(hour))  # type: ignore[call-overload]
    assert set(laid_out) == {"topic", "ticker", "entity"}
    for dimension, hours in laid_out.items():
        assert len(set(hours)) > 5 and hours == sorted(hours), (dimension, hours)
    assert_series_views_are_exact(pg_engine)  # the same rows, only laid out anew
