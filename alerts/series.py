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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import DateTime, Engine, bindparam, text

from connectors.db.sql_expressions import signed_sentiment

TICKER = "ticker"


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


def _epoch(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM {column})"
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


def _floor_int(dialect: str, expression: str) -> str:
    # The argument is never negative, so SQLite's truncating CAST is a floor there.
    if dialect == "postgresql":
        return f"CAST(FLOOR({expression}) AS INTEGER)"
    return f"CAST({expression} AS INTEGER)"


def series_sql(dialect: str, query: SeriesQuery) -> str:
    # Each article's latest answers come from the current_* tables (connectors/db/current.py):
    # ranking the raw predictions here made PostgreSQL scan a CTE it estimated at a few rows once
    # per recent article, quadratic in the window's volume.
    # CROSS JOIN + WHERE is an inner join to PostgreSQL; to SQLite it also fixes the join order,
    # so answers are looked up per recent article (by article id) instead of every answer of the
    # instruction being scanned.
    def signed(alias: str) -> str:
        return signed_sentiment(dialect, f"{alias}.distribution", query.positive_label, query.negative_label)

    if query.dimension == TICKER:
        keyed = """
    SELECT r.id, r.published_at, k.ticker AS series_key, CAST(NULL AS VARCHAR(100)) AS key_version
    FROM recent r JOIN article_tickers k ON k.article_id = r.id"""
        # Several entities of one article can share a ticker ("Tesla" and "$TSLA" given
        # separately): the first by name answers, as in v_ticker_sentiment_items.
        toward = """,
toward AS (
    SELECT e.article_id, e.ticker, e.label, e.distribution,
           ROW_NUMBER() OVER (PARTITION BY e.article_id, e.ticker ORDER BY e.entity) AS rn
    FROM recent r CROSS JOIN current_entity_predictions e
    WHERE e.article_id = r.id AND e.instruction = :sentiment AND e.ticker IS NOT NULL
)"""
        joined = """
LEFT JOIN toward t ON t.article_id = keyed.id AND t.ticker = keyed.series_key AND t.rn = 1"""
        label, rated = "COALESCE(t.label, s.label)", "COALESCE(t.article_id, s.article_id)"
        signed_value = (
            f"CASE WHEN t.article_id IS NOT NULL THEN {signed('t')} "
            f"WHEN s.article_id IS NOT NULL THEN {signed('s')} ELSE 0 END"
        )
    else:
        keyed = """
    SELECT r.id, r.published_at, d.label AS series_key, d.model_version AS key_version
    FROM recent r CROSS JOIN current_predictions d
    WHERE d.article_id = r.id AND d.instruction = :dimension"""
        toward, joined = "", ""
        label, rated = "s.label", "s.article_id"
        signed_value = f"CASE WHEN s.article_id IS NULL THEN 0 ELSE {signed('s')} END"
    age = f"(:end_epoch - {_epoch(dialect, 'keyed.published_at')}) / :bucket_s"
    return f"""
WITH recent AS (
    SELECT a.id, a.published_at FROM articles a
    WHERE a.published_at > :start AND a.published_at <= :end
){toward},
keyed AS ({keyed}
)
SELECT keyed.series_key, {_floor_int(dialect, age)} AS idx,
       COUNT(*) AS items,
       SUM(CASE WHEN {label} = :negative THEN 1 ELSE 0 END) AS negative,
       COUNT({rated}) AS rated,
       COALESCE(SUM({signed_value}), 0) AS signed_sum,
       SUM(CASE WHEN COALESCE(s.model_version, :version) <> :version
                  OR COALESCE(keyed.key_version, :version) <> :version THEN 1 ELSE 0 END) AS other
FROM keyed
LEFT JOIN current_predictions s ON s.article_id = keyed.id AND s.instruction = :sentiment{joined}
GROUP BY keyed.series_key, idx"""


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


def read_series(engine: Engine, query: SeriesQuery, now: datetime, version: str | None = None) -> SeriesSet:
    """The series at `now`. With `version`, a key's point where more than MIXED_SHARE of the
    items carry another model version's answers is left out (all zero, `mixed` set): the alert
    scan judges a window only against a baseline labelled by the same model, so a promotion is
    not read as news while the backfill re-labels history (pipeline/jobs/backfill.py)."""
    end = now.astimezone(UTC)
    start = end - timedelta(seconds=query.bucket_s * query.points)
    statement = text(series_sql(engine.dialect.name, query)).bindparams(
        bindparam("start", type_=DateTime(timezone=True)),
        bindparam("end", type_=DateTime(timezone=True)),
    )
    params = {
        "start": start,
        "end": end,
        "end_epoch": end.timestamp(),
        "bucket_s": float(query.bucket_s),
        "dimension": query.dimension,
        "sentiment": query.sentiment_instruction,
        "negative": query.negative_label,
        "version": version or "",
    }
    with engine.connect() as conn:
        rows = conn.execute(statement, params).all()
    keys = sorted({str(row[0]) for row in rows})
    shape = (len(keys), query.points)
    arrays = {name: np.zeros(shape) for name in ("volume", "negative", "rated", "signed_sum", "other")}
    position = {key: i for i, key in enumerate(keys)}
    for key, idx, items, negative, rated, signed_sum, other in rows:
        point = query.points - 1 - int(idx)  # idx 0 is the newest bucket: last column
        if not 0 <= point < query.points:
            continue
        i = position[str(key)]
        arrays["volume"][i, point] += items
        arrays["negative"][i, point] += negative or 0
        arrays["rated"][i, point] += rated or 0
        arrays["signed_sum"][i, point] += float(signed_sum or 0.0)
        arrays["other"][i, point] += other or 0
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
