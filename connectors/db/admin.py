"""Database administration an operator runs by hand: table sizes, and a read-only analyst login.

The analyst role (PostgreSQL only) can read the analyst views and the tables analysts query, and
can write nothing: it is granted SELECT only, its sessions default to read-only transactions,
its statements time out (a runaway query must not hold locks the worker needs), and it is
refused the tables that hold process state rather than news: job locks, the scheduler's job
store, the migration version and the alert outbox (payloads and receiver errors). Views read
their tables with their owner's rights, so SELECT on a view is enough to query it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, inspect, text

from connectors.db.partitions import is_partition
from connectors.db.schema import Base
from connectors.errors import UserInputError

# Tables that describe the process, not the news: never readable by an analyst.
NOT_FOR_ANALYSTS = frozenset({"job_locks", "apscheduler_jobs", "alembic_version", "alert_notifications"})
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AdminError(UserInputError, RuntimeError):
    """An administration request cannot be done; the message says why."""


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int
    bytes: int | None  # table, indexes and TOAST; None where the database cannot say (SQLite)


# Above this many rows (by the planner's estimate) a status screen shows the estimate: an exact
# COUNT(*) of 10 M articles took about a second of the 1.3 s `finsent status` spent.
EXACT_COUNT_UP_TO = 1_000_000


def row_count(conn: Connection, table: str, exact_up_to: int = EXACT_COUNT_UP_TO) -> tuple[int, bool]:
    """(rows, estimated): the exact count, or on PostgreSQL the planner's estimate (kept by
    ANALYZE and autovacuum) once that is above `exact_up_to`. A table never analysed (estimate
    -1 or 0) is counted exactly."""
    if conn.dialect.name == "postgresql":
        estimate = conn.execute(
            # A partitioned table's rows are its leaves'; a plain table has no partition tree.
            text(
                "SELECT COALESCE((SELECT SUM(GREATEST(c.reltuples, 0)) FROM pg_partition_tree(:t) p "
                "JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf), "
                "(SELECT GREATEST(c.reltuples, 0) FROM pg_class c WHERE c.oid = CAST(:t AS regclass)))"
            ),
            {"t": table},
        ).scalar_one()
        if estimate is not None and int(estimate) > exact_up_to:
            return int(estimate), True
    return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()), False


def table_stats(engine: Engine) -> list[TableStats]:
    """Every table of the schema with its exact row count and, on PostgreSQL, its total size."""
    names = sorted(set(Base.metadata.tables) & set(inspect(engine).get_table_names()))
    stats = []
    with engine.connect() as conn:
        for name in names:
            rows = int(conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one())
            size = None
            if engine.dialect.name == "postgresql":
                # A partitioned table owns no storage itself: its size is its partitions' (a
                # plain table has no partition tree).
                size = int(
                    conn.execute(
                        text(
                            "SELECT COALESCE((SELECT SUM(pg_total_relation_size(relid)) "
                            "FROM pg_partition_tree(:t)), pg_total_relation_size(:t))"
                        ),
                        {"t": name},
                    ).scalar_one()
                )
            stats.append(TableStats(name, rows, size))
    return stats


def database_bytes(engine: Engine) -> int | None:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    database = engine.url.database
    return Path(database).stat().st_size if database and Path(database).is_file() else None


def analyst_relations(engine: Engine) -> list[str]:
    """What the analyst role may read: every view, and every table but the process's own."""
    inspector = inspect(engine)
    # Partitions are read through their parent, which is what is granted.
    tables = [t for t in inspector.get_table_names() if t not in NOT_FOR_ANALYSTS and not is_partition(t)]
    return sorted(inspector.get_view_names()) + sorted(tables)


def create_analyst_role(engine: Engine, name: str, password: str, statement_timeout_s: int = 60) -> list[str]:
    """Create (or bring up to date) a login role that can read the analyst relations and write
    nothing. Safe to run again, e.g. after `finsent db upgrade` added views. Returns what it may
    read."""
    if engine.dialect.name != "postgresql":
        raise AdminError("an analyst role needs PostgreSQL; SQLite has no roles (give analysts a copy)")
    if not _ROLE_NAME.match(name):
        raise AdminError(f"role name {name!r}: lower-case letters, digits and _, at most 63")
    if not password:
        raise AdminError("the analyst role needs a password")
    relations = analyst_relations(engine)
    with engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        existing = conn.execute(
            text(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolname = current_user "
                "FROM pg_roles WHERE rolname = :n"
            ),
            {"n": name},
        ).first()
        if existing is not None and existing[0]:
            # Re-running brings an analyst role up to date; it must never demote an admin.
            raise AdminError(
                f"role {name!r} exists with more than login rights (or is you): choose another name"
            )
        verb = "ALTER" if existing is not None else "CREATE"
        # CREATE ROLE takes no bind parameters, and SQLAlchemy puts statements and parameters
        # into its error messages: the statement is composed and run by the driver itself, and
        # a failure reports only the server's message, never the password.
        statement = sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(name), sql.Literal(password)
        )
        try:
            with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(statement)
        except psycopg.Error as exc:
            raise AdminError(f"{verb.lower()} role {name!r} failed: {exc.diag.message_primary}") from None
        conn.exec_driver_sql(f'ALTER ROLE "{name}" SET default_transaction_read_only = on')
        conn.exec_driver_sql(f"ALTER ROLE \"{name}\" SET statement_timeout = '{int(statement_timeout_s)}s'")
        conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO "{name}"')
        conn.exec_driver_sql(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{name}"')
        conn.exec_driver_sql(f'REVOKE CREATE ON SCHEMA public FROM "{name}"')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{name}"')
        for relation in relations:
            conn.exec_driver_sql(f'GRANT SELECT ON "{relation}" TO "{name}"')
    return relations
