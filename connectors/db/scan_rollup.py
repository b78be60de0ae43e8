"""Per-minute counts behind the alert scan's series, and the SQL that counts them.

The scan's windows are aligned to the evaluation time, not the clock (alerts/series.py), so the
hourly rollups cannot serve them; counted live, each scan read every article of its longest
window and baseline (two days of topics, a day of tickers): linear in the volume, 1.8 s per scan
at a month of 33,000 articles a day and ten times that at ten times the volume.

`rollup_scan_minutes` holds, per UTC minute of publication, dimension (`ticker`, or an
instruction's name) and key (a ticker or a label): items, negative, rated and the signed-
sentiment sum, split by the model versions that answered (the sentiment's and the key's), so the
scan can still leave out a point another model labelled. A bucket of a scan's series is then a
sum of whole minutes, except the minute each bucket edge falls in (counted live, to the exact
instant) and the hours whose rollups are stale.

Staleness is the hourly rollups' own: the triggers that mark an hour dirty
(connectors/db/rollups.py) mark it for these rows too, and the fold that recounts an hour's
hourly rows recounts its minutes in the same transaction. A dirty hour is always counted live, so
a series is exact the moment a writer commits; for topics and tickers "live" sums the items'
rows of `rollup_items`, which the writer's transaction keeps (connectors/db/rollup_items.py).

Only the default sentiment instruction and labels are rolled up; a rule naming others is
counted live, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BindParameter, DateTime, bindparam

from connectors.db.sql_expressions import epoch_slot, signed_sentiment

TABLE = "rollup_scan_minutes"
TICKER = "ticker"
SENTIMENT = "sentiment"
NEGATIVE = "negative"
POSITIVE = "positive"
COUNTS = ("items", "negative", "rated", "signed_sum")


@dataclass(frozen=True)
class Ranges:
    """Disjoint [lo, hi) ranges of publication time as an OR of index range conditions, with
    their bind parameters. Not a joined list of ranges: PostgreSQL estimated each joined range at
    a ninth of the articles and hashed every current answer (a second per series at a million
    articles); separate conditions are estimated from the histogram, and looked up by index."""

    condition: str
    params: dict[str, datetime]

    @classmethod
    def of(cls, seconds: list[tuple[int, int]]) -> Ranges:
        merged: list[list[int]] = []
        for lo, hi in sorted(seconds):
            if merged and lo <= merged[-1][1]:  # adjacent dirty hours become one range
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        if not merged:
            return cls("1 = 0", {})
        conditions = [
            f"(a.published_at >= :range_lo{i} AND a.published_at < :range_hi{i})" for i in range(len(merged))
        ]
        params = {}
        for i, (lo, hi) in enumerate(merged):
            params[f"range_lo{i}"] = datetime.fromtimestamp(lo, UTC)
            params[f"range_hi{i}"] = datetime.fromtimestamp(hi, UTC)
        return cls(f"({' OR '.join(conditions)})", params)

    def bindparams(self) -> list[BindParameter[Any]]:
        """Typed as timestamps: SQLite compares them as the text it stores."""
        return [bindparam(name, type_=DateTime(timezone=True)) for name in self.params]


def articles_in_ranges(ranges: Ranges, bounded: bool) -> str:
    """The articles published within `ranges`, and within (:start, :end] when `bounded`."""
    window = " AND a.published_at > :start AND a.published_at <= :end" if bounded else ""
    return f"SELECT a.id, a.published_at FROM articles a WHERE {ranges.condition}{window}"


def answered_items_sql(
    dialect: str,
    recent: str,
    dimension: str | None,
    negative: str = NEGATIVE,
    positive: str = POSITIVE,
) -> str:
    """One row per counted item of the articles `recent` yields (a SELECT of id, published_at):
    (dimension, series_key, published_at, key_version, sentiment_version, is_negative, rated,
    signed). `dimension` is TICKER, an instruction's name, or None for every article-scoped
    instruction at once. :sentiment names the sentiment instruction, :negative its negative
    label (and :dimension the one instruction).

    Per ticker the sentiment is the one *toward* the ticker (the latest entity answer for its
    company in that article) where the model gave one, else the article's, as the
    `v_ticker_sentiment_*` views count it. CROSS JOIN + WHERE is an inner join to PostgreSQL; to
    SQLite it also fixes the join order, so answers are looked up per recent article (by article
    id) instead of every answer of the instruction being scanned.
    """

    if dialect == "postgresql":
        return _answered_items_postgresql(recent, dimension, negative, positive)

    def signed(alias: str) -> str:
        return signed_sentiment(dialect, f"{alias}.distribution", positive, negative)

    if dimension == TICKER:
        keyed = f"""
    SELECT r.id, r.published_at, '{TICKER}' AS dimension, k.ticker AS series_key,
           CAST(NULL AS VARCHAR(100)) AS key_version
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
        only = " AND d.instruction = :dimension" if dimension is not None else ""
        keyed = f"""
    SELECT r.id, r.published_at, d.instruction AS dimension, d.label AS series_key,
           d.model_version AS key_version
    FROM recent r CROSS JOIN current_predictions d
    WHERE d.article_id = r.id{only}"""
        toward, joined = "", ""
        label, rated = "s.label", "s.article_id"
        signed_value = f"CASE WHEN s.article_id IS NULL THEN 0 ELSE {signed('s')} END"
    return f"""
WITH recent AS ({recent}
){toward},
keyed AS ({keyed}
)
SELECT keyed.dimension, keyed.series_key, keyed.published_at, keyed.key_version,
       s.model_version AS sentiment_version,
       CASE WHEN {label} = :negative THEN 1 ELSE 0 END AS is_negative,
       CASE WHEN {rated} IS NULL THEN 0 ELSE 1 END AS rated,
       {signed_value} AS signed
FROM keyed
LEFT JOIN current_predictions s ON s.article_id = keyed.id AND s.instruction = :sentiment{joined}"""


def _answered_items_postgresql(recent: str, dimension: str | None, negative: str, positive: str) -> str:
    """answered_items_sql on PostgreSQL: every answer read by one probe of its table's key per
    item. Joined as above, PostgreSQL hashed every current entity answer of the database to find
    those of the recent articles, and looked up the sentiment of every recent article before
    keeping those with a ticker: 1.5 s of the ticker series' 2.2 s per scan at 10,000 articles an
    hour with two hours not folded. OFFSET 0 keeps each LATERAL a subquery probed per row (see
    connectors/db/rollup_items.py)."""

    def signed(alias: str) -> str:
        return signed_sentiment("postgresql", f"{alias}.distribution", positive, negative)

    sentiment = """
LEFT JOIN LATERAL (
    SELECT s.label, s.distribution, s.model_version FROM current_predictions s
    WHERE s.article_id = r.id AND s.instruction = :sentiment OFFSET 0
) s ON TRUE"""
    if dimension == TICKER:
        # Tickers first: only the articles that have one are looked up. Several entities of one
        # article can share a ticker: the first by name answers, as in v_ticker_sentiment_items.
        return f"""
WITH recent AS ({recent}
)
SELECT '{TICKER}' AS dimension, k.ticker AS series_key, r.published_at,
       CAST(NULL AS VARCHAR(100)) AS key_version, s.model_version AS sentiment_version,
       CASE WHEN COALESCE(t.label, s.label) = :negative THEN 1 ELSE 0 END AS is_negative,
       CASE WHEN t.found IS NULL AND s.model_version IS NULL THEN 0 ELSE 1 END AS rated,
       CASE WHEN t.found IS NOT NULL THEN {signed("t")}
            WHEN s.model_version IS NOT NULL THEN {signed("s")} ELSE 0 END AS signed
FROM recent r
CROSS JOIN LATERAL (SELECT k.ticker FROM article_tickers k WHERE k.article_id = r.id OFFSET 0) k{sentiment}
LEFT JOIN LATERAL (
    SELECT TRUE AS found, e.label, e.distribution FROM current_entity_predictions e
    WHERE e.article_id = r.id AND e.ticker = k.ticker AND e.instruction = :sentiment
    ORDER BY e.entity LIMIT 1
) t ON TRUE"""
    only = " AND d.instruction = :dimension" if dimension is not None else ""
    return f"""
WITH recent AS ({recent}
)
SELECT d.instruction AS dimension, d.label AS series_key, r.published_at,
       d.model_version AS key_version, s.model_version AS sentiment_version,
       CASE WHEN s.label = :negative THEN 1 ELSE 0 END AS is_negative,
       CASE WHEN s.model_version IS NULL THEN 0 ELSE 1 END AS rated,
       CASE WHEN s.model_version IS NULL THEN 0 ELSE {signed("s")} END AS signed
FROM recent r
CROSS JOIN LATERAL (
    SELECT d.instruction, d.label, d.model_version FROM current_predictions d
    WHERE d.article_id = r.id{only} OFFSET 0
) d{sentiment}"""


def recount_sql(dialect: str, dimension: str | None, ranges: Ranges) -> str:
    """INSERT the minute rows of the articles in `ranges` (whole hours being folded)."""
    items = answered_items_sql(dialect, articles_in_ranges(ranges, bounded=False), dimension)
    minute = epoch_slot(dialect, "i.published_at", 60)
    return f"""
INSERT INTO {TABLE} (minute, dimension, series_key, sentiment_version, key_version, {", ".join(COUNTS)})
SELECT {minute}, i.dimension, i.series_key, COALESCE(i.sentiment_version, ''),
       COALESCE(i.key_version, ''), COUNT(*), SUM(i.is_negative), SUM(i.rated),
       COALESCE(SUM(i.signed), 0.0)
FROM ({items}) i
WHERE i.series_key IS NOT NULL
GROUP BY {minute}, i.dimension, i.series_key,
         COALESCE(i.sentiment_version, ''), COALESCE(i.key_version, '')"""


def delete_hours_sql(hours: str) -> str:
    """DELETE the minute rows of the hours `hours` (a SELECT of one `hour` column) yields. The
    range bounds let the primary key's index find them; the folded hours are usually adjacent."""
    return (
        f"DELETE FROM {TABLE} WHERE minute >= (SELECT MIN(hour) FROM ({hours}) h1) * 60 "
        f"AND minute < (SELECT MAX(hour) FROM ({hours}) h2) * 60 + 60 AND minute / 60 IN ({hours})"
    )
