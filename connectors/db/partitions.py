"""Monthly partitions of the raw prediction tables on PostgreSQL.

`predictions` and `entity_predictions` grow with every article times every instruction times
every model version that answered it: the largest tables, and the ones whose old rows nobody
reads once a newer answer is current (the views and the alert scan read `current_*` and the
rollups). On PostgreSQL they are range-partitioned by month of the *article's publication*
(`published_at`, copied onto each row), so a query bounded in time reads only its months and
dropping a month of raw history is `DROP TABLE`, not a DELETE that rewrites the current tables.

Why publication time and not the row's creation time: every unique key of a partitioned table
must hold the partition key, and `(article, instruction, model version)` is what makes a
redelivered batch insert nothing. A redelivery carries the article's publication time again
(the writer copies it from the stored article), so the key stays unique across months; creation
time differs on every redelivery and would have let a duplicate into the next month.

A `DEFAULT` partition catches rows of months that have no partition yet (a late backfill of old
news, a clock far off), so a write never fails for want of a partition; `ensure_partitions`
(migration, housekeeping) moves such rows into their month's partition when it creates it.
SQLite stays one table: every function here does nothing there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

PARTITIONED = ("predictions", "entity_predictions")
KEY = "published_at"
# The current month and this many after it always exist, so the worker's writes land in a month
# partition (not the default) even if housekeeping stops for weeks.
MONTHS_AHEAD = 2
# Serialises partition changes across processes (housekeeping on two schedulers, a migration):
# two creating the same month would otherwise race between "does it exist" and CREATE.
_LOCK_KEY = 0x66696E70  # "finp"
_PARTITION_NAME = re.compile(rf"^({'|'.join(PARTITIONED)})_(p\d{{6}}|default)$")
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    start: datetime | None  # None: the default partition
    end: datetime | None


def is_partition(name: str) -> bool:
    """A partition's own table name: schema comparisons and the analyst grants skip these (the
    parent table is what is queried and granted)."""
    return _PARTITION_NAME.match(name) is not None


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def months_between(first: datetime, last: datetime) -> list[datetime]:
    """Every month from `first`'s to `last`'s, both included."""
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def partitions(conn: Connection, table: str) -> list[Partition]:
    """The partitions of `table`, months in order, the default last."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:
            found.append(Partition(table, name, None, None))
            continue
        start, end = (datetime.fromisoformat(v).astimezone(UTC) for v in match.groups())
        found.append(Partition(table, name, start, end))
    return sorted(found, key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC)))


def create_default(conn: Connection, table: str) -> None:
    conn.execute(text(f"CREATE TABLE {default_name(table)} PARTITION OF {table} DEFAULT"))


def ensure_month(conn: Connection, table: str, month: datetime) -> str | None:
    """Create `table`'s partition for `month` unless it exists; returns its name if created.

    Built beside the table and then attached, with the month's rows moved out of the default
    partition in the same transaction: `CREATE TABLE ... PARTITION OF` would take an exclusive
    lock on the whole parent (every writer waits), and attaching fails while the default still
    holds rows of the month. The default is locked first, so a row the worker routes there
    meanwhile waits for the attach and then lands in the new partition instead.
    """
    month = month_start(month)
    name = partition_name(table, month)
    if any(p.name == name for p in partitions(conn, table)):
        return None
    start, end = month.isoformat(), next_month(month).isoformat()
    default = default_name(table)
    conn.execute(text(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default} WHERE {KEY} >= :start AND {KEY} < :end RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        {"start": start, "end": end},
    )
    conn.execute(
        text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')")
    )
    return name


def months_in_default(conn: Connection, table: str) -> list[datetime]:
    rows = conn.execute(
        text(f"SELECT DISTINCT date_trunc('month', {KEY} AT TIME ZONE 'UTC') FROM {default_name(table)}")
    ).scalars()
    return sorted(month_start(m) for m in rows)


def ensure_partitions_on(
    conn: Connection,
    now: datetime,
    months: Iterable[datetime] = (),
    months_ahead: int = MONTHS_AHEAD,
    tables: Iterable[str] = PARTITIONED,
) -> list[str]:
    """`ensure_partitions` on an open connection (a migration's)."""
    if not _is_postgresql(conn):
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    ahead = month_start(now)
    for _ in range(months_ahead):
        ahead = next_month(ahead)
    wanted = {month_start(m) for m in months} | set(months_between(now, ahead))
    created = []
    for table in tables:
        for m in sorted(wanted | set(months_in_default(conn, table))):
            name = ensure_month(conn, table, m)
            if name:
                created.append(name)
    return created


def ensure_partitions(engine: Engine, now: datetime | None = None) -> list[str]:
    """The current month's partitions and the next ones, and a partition for every month that
    has rows waiting in a default partition; returns the partitions created."""
    with engine.begin() as conn:
        return ensure_partitions_on(conn, now or datetime.now(UTC))


def drop_partitions_before(engine: Engine, cutoff: datetime) -> list[str]:
    """Drop every month partition that ends on or before `cutoff`: the raw answers of articles
    published then. The current answers (`current_*`) and the rollups are separate tables, so
    the views, series and alerts do not change; only the older model versions' rows go."""
    with engine.begin() as conn:
        if not _is_postgresql(conn):
            return []
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        dropped = []
        for table in PARTITIONED:
            for partition in partitions(conn, table):
                if partition.end is not None and partition.end <= cutoff:
                    conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {partition.name}"))
                    conn.execute(text(f"DROP TABLE {partition.name}"))
                    dropped.append(partition.name)
        return dropped
