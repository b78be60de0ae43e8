"""Volume and sentiment series per topic or per ticker, computed in SQL on PostgreSQL and SQLite.

Windows are aligned to the evaluation time, not to the clock: point 0 covers (now - bucket, now],
point 1 the bucket before it, and so on. A scan running every minute therefore always judges a
full bucket (no half-filled clock bucket that reads as a drop and makes alerts flap), and the
same query replays history by passing an earlier `now`.

The dimension is `ticker` (the article_tickers links: cashtags and recognised company names) or
the name of any instruction (its label is the key: `topic`, or one an operator added). Sentiment
comes from each article's latest prediction of the sentiment instruction; per ticker it is the
sentiment *toward that ticker* (the latest entity-level prediction for the ticker's company in
that article) where the model gave one, so "Tesla beats; Ford cuts guidance" is negative for F
only. Articles without one (a cashtag the text never names, rows from before entity scope) count
with the article's sentiment, as `v_ticker_sentiment_*` do.

Counting every item of a two-day window on each scan grew with the volume; whole minutes come
from `rollup_scan_minutes` instead, and only the minutes the bucket edges cut and the hours not
yet folded are counted live (connectors/db/scan_rollup.py): for topics and tickers summed from
`rollup_items`, each article's rows as the series count them, kept by the database's triggers
(connectors/db/rollup_items.py); for an operator's instruction from its answers per article.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BindParameter, Connection, DateTime, Engine, Row, bindparam, text

from connectors.db import scan_rollup
from connectors.db.rollup_keys import ITEMS, TOPIC
from connectors.db.rollups import DIRTY
from connectors.db.sql_expressions import epoch_seconds, int_list_param

TICKER = scan_rollup.TICKER
# PostgreSQL's memory for one series read's aggregation (the transaction's only).
SCAN_WORK_MEM = "32MB"
# The dimensions whose items `rollup_items` holds, counted as the scan counts them.
ITEM_DIMENSIONS = (TICKER, TOPIC.dimension)


@dataclass(frozen=True)
class SeriesQuery:
    dimension: str
    bucket_s: int
    points: int
    sentiment_instruction: str = "sentiment"
    negative_label: str = "negative"
    positive_label: str = "positive"

    def __post_init__(self) -> None:
        if self.bucket_s < 1 or self.points < 2:
            raise ValueError("a series needs a bucket of at least 1 s and at least 2 points")


@dataclass
class SeriesSet:
    """Counts per key and point, oldest point first (index -1 is the window being judged)."""

    end: datetime
    bucket_s: int
    keys: list[str]
    volume: NDArray[np.float64]
    negative: NDArray[np.float64]
    rated: NDArray[np.float64]
    signed_sum: NDArray[np.float64]
    # Per key and point: left out because another model version labelled its items; no value
    # (NaN) and no volume, so it neither enters a baseline nor gets judged.
    mixed: NDArray[np.bool_] | None = None
    index: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {key: i for i, key in enumerate(self.keys)}
        if self.mixed is None:
            self.mixed = np.zeros(self.volume.shape, dtype=bool)

    def matrix(self, metric: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(metric values, volume behind each value), one row per key; shares and means are NaN
        where nothing was rated."""
        gap = self.mixed if self.mixed is not None else np.zeros(self.volume.shape, dtype=bool)
        if metric == "volume":
            return np.where(gap, np.nan, self.volume), self.volume
        if metric == "negative_volume":
            return np.where(gap, np.nan, self.negative), self.negative
        rated = self.rated
        with np.errstate(invalid="ignore", divide="ignore"):
            if metric == "negative_share":
                values = np.where(rated > 0, self.negative / rated, np.nan)
            elif metric == "mean_sentiment":
                values = np.where(rated > 0, self.signed_sum / rated, np.nan)
            else:
                raise ValueError(f"unknown metric {metric!r}")
        return values, rated

    def values(self, metric: str, key: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """One key's row of `matrix`."""
        values, volume = self.matrix(metric)
        i = self.index[key]
        return values[i], volume[i]


METRICS = ("volume", "negative_volume", "negative_share", "mean_sentiment")
# A point labelled by the live model version but for this share of its items is still judged:
# the stragglers of a rolling swap (a worker that refreshes a few seconds late) must not switch
# the alerts off, and at 5% they cannot move a share or a count far.
MIXED_SHARE = 0.05


def _floor_int(dialect: str, expression: str) -> str:
    # The argument is never negative, so SQLite's truncating CAST is a floor there.
    if dialect == "postgresql":
        return f"CAST(FLOOR({expression}) AS INTEGER)"
    return f"CAST({expression} AS INTEGER)"


def _other(sentiment_version: str, key_version: str, unset: str) -> str:
    """An item another model version answered (its sentiment or its key): :version is the live
    one; `unset` is how a missing answer reads (NULL live, '' in the rollup)."""
    if unset == "NULL":
        return (
            f"COALESCE({sentiment_version}, :version) <> :version "
            f"OR COALESCE({key_version}, :version) <> :version"
        )
    return (
        f"({sentiment_version} <> '' AND {sentiment_version} <> :version) "
        f"OR ({key_version} <> '' AND {key_version} <> :version)"
    )


def series_sql(dialect: str, query: SeriesQuery, recent: str | None = None) -> str:
    """(series_key, idx, items, negative, rated, signed_sum, other) counted from the current
    answers of the articles `recent` yields (default: every article of the window)."""
    # Each article's latest answers come from the current_* tables (connectors/db/current.py):
    # ranking the raw predictions here made PostgreSQL scan a CTE it estimated at a few rows once
    # per recent article, quadratic in the window's volume.
    window = (
        "SELECT a.id, a.published_at FROM articles a WHERE a.published_at > :start AND a.published_at <= :end"
    )
    recent = recent or window
    items = scan_rollup.answered_items_sql(
        dialect, recent, query.dimension, query.negative_label, query.positive_label
    )
    age = f"(:end_epoch - {epoch_seconds(dialect, 'i.published_at')}) / :bucket_s"
    other = _other("i.sentiment_version", "i.key_version", "NULL")
    return f"""
SELECT i.series_key, {_floor_int(dialect, age)} AS idx,
       COUNT(*) AS items, SUM(i.is_negative) AS negative, SUM(i.rated) AS rated,
       COALESCE(SUM(i.signed), 0) AS signed_sum,
       SUM(CASE WHEN {other} THEN 1 ELSE 0 END) AS other
FROM ({items}) i
GROUP BY i.series_key, {_floor_int(dialect, age)}"""


def stored_series_sql(dialect: str) -> str:
    """The same columns summed from the minute rollup (connectors/db/scan_rollup.py) for the
    minutes strictly inside the window that no bucket edge cuts and whose hour is clean; the
    minute's middle places it in its bucket (no edge falls inside it)."""
    age = "(:end_epoch - (r.minute * 60 + 30)) / :bucket_s"
    other = _other("r.sentiment_version", "r.key_version", "''")
    return f"""
SELECT r.series_key, {_floor_int(dialect, age)} AS idx,
       SUM(r.items) AS items, SUM(r.negative) AS negative, SUM(r.rated) AS rated,
       COALESCE(SUM(r.signed_sum), 0) AS signed_sum,
       SUM(CASE WHEN {other} THEN r.items ELSE 0 END) AS other
FROM {scan_rollup.TABLE} r
WHERE r.dimension = :dimension AND r.minute > :first_minute AND r.minute < :last_minute
  AND r.minute NOT IN ({int_list_param(dialect, "edges")})
  AND r.minute / 60 NOT IN ({int_list_param(dialect, "dirty")})
GROUP BY r.series_key, {_floor_int(dialect, age)}"""


def items_series_sql(dialect: str, ranges: scan_rollup.Ranges) -> str:
    """series_sql's columns summed from `rollup_items` (connectors/db/rollup_items.py) for the
    items of the window published within `ranges`: index range scans of (dimension,
    published_at) instead of looking up each article's answers (1.6 s of a scan's 2.2-3.0 s at
    10,000 articles an hour with two hours not folded). The table holds each article's topic and
    ticker rows with the sentiment the scan counts and the versions it judges a point by."""
    age = f"(:end_epoch - {epoch_seconds(dialect, 'a.published_at')}) / :bucket_s"
    other = _other("a.sentiment_version", "a.key_version", "NULL")
    return f"""
SELECT a.series_key, {_floor_int(dialect, age)} AS idx,
       COUNT(*) AS items, SUM(CASE WHEN a.sentiment = :negative THEN 1 ELSE 0 END) AS negative,
       COUNT(a.sentiment) AS rated, COALESCE(SUM(a.sentiment_signed), 0) AS signed_sum,
       SUM(CASE WHEN {other} THEN 1 ELSE 0 END) AS other
FROM {ITEMS} a
WHERE a.dimension = :dimension AND {ranges.condition}
  AND a.published_at > :start AND a.published_at <= :end
GROUP BY a.series_key, {_floor_int(dialect, age)}"""


def _rolled_up(query: SeriesQuery) -> bool:
    """Whether the minute rollup can answer `query`: it counts the default sentiment only, and
    a bucket of whole minutes keeps every edge at the same second of its minute."""
    return (
        query.bucket_s % 60 == 0
        and query.sentiment_instruction == scan_rollup.SENTIMENT
        and query.negative_label == scan_rollup.NEGATIVE
        and query.positive_label == scan_rollup.POSITIVE
    )


def _read_rolled_up(
    conn: Connection,
    dialect: str,
    query: SeriesQuery,
    params: dict[str, Any],
    start: datetime,
    end: datetime,
    bounds: tuple[BindParameter[Any], ...],
) -> list[Row[Any]]:
    """Whole clean minutes from the rollup; counted live, to the instant, the minute each bucket
    edge falls in and every dirty hour of the window (disjoint ranges: no item twice), from
    `rollup_items` where it holds the dimension."""
    start_s, end_s = start.timestamp(), end.timestamp()
    edges = {math.floor((end_s - k * query.bucket_s) / 60) for k in range(query.points + 1)}
    first_hour, last_hour = math.floor(start_s / 3600), math.floor(end_s / 3600)
    dirty = {
        int(h)
        for (h,) in conn.execute(
            text(f"SELECT hour FROM {DIRTY} WHERE hour >= :first AND hour <= :last"),
            {"first": first_hour, "last": last_hour},
        )
    }
    ranges = scan_rollup.Ranges.of(
        [(h * 3600, (h + 1) * 3600) for h in dirty]
        + [(m * 60, (m + 1) * 60) for m in edges if m // 60 not in dirty]
    )
    if query.dimension in ITEM_DIMENSIONS:
        live = items_series_sql(dialect, ranges)
    else:  # an operator's instruction: its answers are looked up per article
        live = series_sql(dialect, query, scan_rollup.articles_in_ranges(ranges, bounded=True))
    statement = text(live).bindparams(*bounds, *ranges.bindparams())
    rows = list(conn.execute(statement, {**params, **ranges.params}))
    stored = {
        **params,
        "first_minute": math.floor(start_s / 60),
        "last_minute": math.floor(end_s / 60),
        "edges": json.dumps(sorted(edges)),
        "dirty": json.dumps(sorted(dirty)),
    }
    rows += conn.execute(text(stored_series_sql(dialect)), stored).all()
    return rows


def live_version(engine: Engine, as_of: datetime, sentiment_instruction: str = "sentiment") -> str | None:
    """The model version that answered the last article stored by `as_of`: the one the workers
    ran then (now, for the live scan; at the replayed time for `finsent alerts scan --at`). When
    nothing was stored by then (history imported later), the last article stored at all."""
    latest = (
        "SELECT c.model_version FROM articles a CROSS JOIN current_predictions c "
        "WHERE c.article_id = a.id AND c.instruction = :sentiment{bound} "
        "ORDER BY a.ingested_at DESC, a.id DESC LIMIT 1"
    )
    bounded = text(latest.format(bound=" AND a.ingested_at <= :as_of")).bindparams(
        bindparam("as_of", type_=DateTime(timezone=True))
    )
    with engine.connect() as conn:
        found = conn.execute(bounded, {"sentiment": sentiment_instruction, "as_of": as_of}).scalar()
        if found is None:
            found = conn.execute(text(latest.format(bound="")), {"sentiment": sentiment_instruction}).scalar()
    return None if found is None else str(found)


def read_series(
    engine: Engine, query: SeriesQuery, now: datetime, version: str | None = None, rollup: bool = True
) -> SeriesSet:
    """The series at `now`. With `version`, a key's point where more than MIXED_SHARE of the
    items carry another model version's answers is left out (all zero, `mixed` set): the alert
    scan judges a window only against a baseline labelled by the same model, so a promotion is
    not read as news while the backfill re-labels history (pipeline/jobs/backfill.py).
    `rollup` False counts every item of the window live (what the bench compares with)."""
    end = now.astimezone(UTC)
    start = end - timedelta(seconds=query.bucket_s * query.points)
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        "end_epoch": end.timestamp(),
        "bucket_s": float(query.bucket_s),
        "dimension": query.dimension,
        "sentiment": query.sentiment_instruction,
        "negative": query.negative_label,
        "version": version or "",
    }
    dialect = engine.dialect.name
    bounds = (
        bindparam("start", type_=DateTime(timezone=True)),
        bindparam("end", type_=DateTime(timezone=True)),
    )
    with engine.connect() as conn:
        if dialect == "postgresql":
            # A day of a ticker rule's minute rows (150,000 at 10 M articles a month) spilled its
            # sort to disk under the default 4 MB: 0.5-0.9 s, 0.3-0.4 s hashed in memory.
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{SCAN_WORK_MEM}'")
        if not (rollup and _rolled_up(query)):
            rows = conn.execute(text(series_sql(dialect, query)).bindparams(*bounds), params).all()
        else:
            rows = _read_rolled_up(conn, dialect, query, params, start, end, bounds)
    keys = sorted({str(row[0]) for row in rows})
    shape = (len(keys), query.points)
    arrays = {name: np.zeros(shape) for name in ("volume", "negative", "rated", "signed_sum", "other")}
    position = {key: i for i, key in enumerate(keys)}
    for key, idx, items, negative, rated, signed_sum, other in rows:
        point = query.points - 1 - int(idx)  # idx 0 is the newest bucket: last column
        if not 0 <= point < query.points:
            continue
        i = position[str(key)]
        # float(): PostgreSQL sums BIGINT columns into NUMERIC (Decimal).
        arrays["volume"][i, point] += float(items)
        arrays["negative"][i, point] += float(negative or 0)
        arrays["rated"][i, point] += float(rated or 0)
        arrays["signed_sum"][i, point] += float(signed_sum or 0.0)
        arrays["other"][i, point] += float(other or 0)
    other = arrays.pop("other")
    mixed = other > MIXED_SHARE * arrays["volume"] if version is not None else np.zeros(shape, dtype=bool)
    for values in arrays.values():
        values[mixed] = 0.0
    return SeriesSet(
        end=end,
        bucket_s=query.bucket_s,
        keys=keys,
        volume=arrays["volume"],
        negative=arrays["negative"],
        rated=arrays["rated"],
        signed_sum=arrays["signed_sum"],
        mixed=mixed,
    )
