"""`finsent db stats` and `finsent db analyst-role`: sizes and counts, and a login that can read
what analysts query and can change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import FINSENT
from tests.test_database import _analyst_queries, _fill


def _finsent(url: str, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINSENT, *args],
        env={**os.environ, "FINSENT_DATABASE_URL": url, "FINSENT_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.postgres
def test_analyst_role_reads_every_analyst_query_and_writes_nothing(
    pg_engine: Engine, pg_url: str, tmp_path: Path
) -> None:
    _fill(pg_engine)
    name, password = f"analyst_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    done = _finsent(pg_url, tmp_path, "db", "analyst-role", "--name", name, FINSENT_ANALYST_PASSWORD=password)
    assert done.returncode == 0, done.stderr
    assert f"user={name}" in done.stdout and password not in done.stdout + done.stderr
    analyst = create_engine(make_url(pg_url).set(username=name, password=password))
    try:
        with analyst.connect() as conn:
            for query in _analyst_queries():
                assert conn.execute(text(query)).all(), query
            assert conn.execute(text("SELECT COUNT(*) FROM entity_predictions")).scalar_one() == 3
            assert conn.execute(text("SELECT COUNT(*) FROM model_versions")).scalar_one() == 0
        refused = [
            "INSERT INTO labels (text, text_hash, instruction, label, annotator, provenance, created_at) "
            "VALUES ('x', 'h', 'sentiment', 'positive', 'a', 'p', now())",
            "UPDATE articles SET title = 'changed'",
            "DELETE FROM predictions",
            "CREATE TABLE mine (x int)",
            "DROP VIEW v_entity_sentiment",
            "SELECT * FROM job_locks",
            "SELECT * FROM alert_notifications",
            "SELECT * FROM alembic_version",
        ]
        for statement in refused:
            # Even a session that asks for read-write is refused: SELECT is all it was granted.
            with analyst.connect() as conn, pytest.raises(DBAPIError):
                conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
                conn.exec_driver_sql(statement)
        with pg_engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one() == 8
            assert (
                conn.execute(text("SELECT COUNT(*) FROM articles WHERE title = 'changed'")).scalar_one() == 0
            )
        # An existing privileged role is never turned into an analyst (it would lose its rights).
        admin = _finsent(
            pg_url, tmp_path, "db", "analyst-role", "--name", "postgres", FINSENT_ANALYST_PASSWORD=password
        )
        assert admin.returncode == 1 and "more than login rights" in admin.stderr
        with pg_engine.connect() as conn:
            assert conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")).scalar_one()
        # Run again (after an upgrade added views): the same role is brought up to date.
        again = _finsent(
            pg_url, tmp_path, "db", "analyst-role", "--name", name, FINSENT_ANALYST_PASSWORD=password
        )
        assert again.returncode == 0, again.stderr
    finally:
        analyst.dispose()
        with pg_engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{name}"')
            conn.exec_driver_sql(f'DROP ROLE "{name}"')


def test_analyst_role_needs_postgresql_and_stats_count_every_table(sqlite_url: str, tmp_path: Path) -> None:
    from connectors.db.engine import make_engine

    refused = _finsent(sqlite_url, tmp_path, "db", "analyst-role", "--name", "analyst")
    assert refused.returncode == 1 and "needs PostgreSQL" in refused.stderr
    _fill(make_engine(sqlite_url))
    stats = json.loads(_finsent(sqlite_url, tmp_path, "db", "stats", "--json").stdout)
    rows = {t["name"]: t["rows"] for t in stats["tables"]}
    assert (rows["articles"], rows["predictions"], rows["entity_predictions"], rows["dlq_records"]) == (
        4,
        8,
        3,
        1,
    )
    assert rows["article_tickers"] == 4 and stats["database_bytes"] > 0
    table = _finsent(sqlite_url, tmp_path, "db", "stats").stdout
    assert "entity_predictions" in table and "database" in table


@pytest.mark.postgres
def test_stats_report_sizes_on_postgresql(pg_engine: Engine, pg_url: str) -> None:
    from connectors.db.admin import analyst_relations, database_bytes, table_stats
    from connectors.db.partitions import is_partition

    _fill(pg_engine)
    stats = {s.name: s for s in table_stats(pg_engine)}
    assert stats["articles"].rows == 4 and stats["articles"].bytes and stats["articles"].bytes > 0
    # Partitioned: the parent owns no storage; its partitions' sizes are its size.
    assert stats["predictions"].rows == 8 and (stats["predictions"].bytes or 0) > 0
    assert not any(is_partition(name) for name in stats)
    relations = analyst_relations(pg_engine)
    assert "predictions" in relations and not any(is_partition(name) for name in relations)
    assert (database_bytes(pg_engine) or 0) > sum(s.bytes or 0 for s in stats.values()) / 2


@pytest.mark.postgres
def test_status_counts_exactly_until_the_estimate_is_large(pg_engine: Engine, sqlite_url: str) -> None:
    from connectors.db.admin import row_count
    from connectors.db.engine import make_engine

    _fill(pg_engine)
    with pg_engine.connect() as conn:
        assert row_count(conn, "articles", exact_up_to=2) == (4, False)  # never analysed: counted
        conn.execute(text("ANALYZE articles, predictions"))
        assert row_count(conn, "articles", exact_up_to=2) == (4, True)  # the planner's estimate
        assert row_count(conn, "articles", exact_up_to=4) == (4, False)
        assert row_count(conn, "predictions", exact_up_to=2) == (8, True)  # summed over partitions
    sqlite = make_engine(sqlite_url)
    _fill(sqlite)
    with sqlite.connect() as conn:
        assert row_count(conn, "articles", exact_up_to=0) == (4, False)  # SQLite: always exact
