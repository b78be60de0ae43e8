"""predictions and entity_predictions carry the article's publication time; on PostgreSQL they are
partitioned by month of it (connectors/db/partitions.py)

Revision ID: 0008
Revises: 0007

PostgreSQL cannot turn a table into a partitioned one in place: each table is rebuilt (renamed,
created partitioned, copied, dropped) in the migration's transaction, keeping its ids and its
sequence, with the current-answer triggers off during the copy (the current tables already hold
the copied rows' answers). SQLite gains the column and the wider unique key.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from connectors.db import partitions
from connectors.db.current import (
    ENTITY_PREDICTIONS,
    PREDICTIONS,
    CurrentTable,
    create_triggers_sql,
    drop_triggers_sql,
)

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD_UNIQUE = {
    "predictions": (
        "uq_predictions_article_id_instruction_model_version",
        ["article_id", "instruction", "model_version"],
    ),
    "entity_predictions": (
        "uq_entity_predictions_key",
        ["article_id", "entity", "instruction", "model_version"],
    ),
}
_NEW_UNIQUE = {"predictions": "uq_predictions_key", "entity_predictions": "uq_entity_predictions_key"}
_INDEXES = {
    "predictions": [
        ("ix_predictions_article_id", ["article_id"]),
        ("ix_predictions_created_at", ["created_at"]),
        ("ix_predictions_instruction_label", ["instruction", "label"]),
    ],
    "entity_predictions": [
        ("ix_entity_predictions_article_id", ["article_id"]),
        ("ix_entity_predictions_created_at", ["created_at"]),
        ("ix_entity_predictions_ticker", ["ticker", "instruction"]),
    ],
}


def _columns(table: str, id_default: str | None) -> list[sa.Column[object]]:
    """The table's columns as revisions 0001 and 0005 made them (without the new one)."""
    default = sa.text(id_default) if id_default else None
    columns: list[sa.Column[object]] = [
        sa.Column("id", BIG_ID, autoincrement=id_default is None, nullable=False, server_default=default),
        sa.Column("article_id", sa.String(length=128), nullable=False),
    ]
    if table == "entity_predictions":
        columns += [
            sa.Column("entity", sa.String(length=200), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("ticker", sa.String(length=16), nullable=True),
            sa.Column("found", sa.Boolean(), nullable=False),
        ]
    return [
        *columns,
        sa.Column("instruction", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("distribution", sa.JSON(), nullable=False),
        sa.Column("zero_shot", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["article_id"], ["articles.id"], name=f"fk_{table}_article_id_articles", ondelete="CASCADE"
    )


def _set_aside(table: str) -> tuple[str, str]:
    """Rename `table` out of the way and free its index and constraint names (they are global on
    PostgreSQL); returns its new name and its id sequence, now owned by nothing (dropping the old
    table would otherwise drop the sequence the rebuilt table draws from)."""
    old = f"{table}_rebuild"
    conn = op.get_bind()
    sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar_one()
    if sequence is None:  # a partitioned table's id is a plain default on the sequence
        sequence = f"{table}_id_seq"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name, _ in _INDEXES[table]:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    constraints = conn.execute(
        sa.text(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u')"
        ),
        {"t": old},
    ).scalars()
    for name in list(constraints):
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    return old, sequence


def _rebuild(table: CurrentTable, partitioned: bool) -> None:
    name = table.raw
    conn = op.get_bind()
    for statement in drop_triggers_sql("postgresql", table):
        op.execute(statement)
    old, sequence = _set_aside(name)
    columns = _columns(name, f"nextval('{sequence}'::regclass)")
    unique_columns = _OLD_UNIQUE[name][1]
    if partitioned:
        op.create_table(
            name,
            *columns,
            sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
            _fk(name),
            sa.PrimaryKeyConstraint("id", "published_at", name=f"pk_{name}"),
            sa.UniqueConstraint(*unique_columns, "published_at", name=_NEW_UNIQUE[name]),
            postgresql_partition_by=f"RANGE ({partitions.KEY})",
        )
    else:
        op.create_table(
            name,
            *columns,
            _fk(name),
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
            sa.UniqueConstraint(*unique_columns, name=_OLD_UNIQUE[name][0]),
        )
    for index, index_columns in _INDEXES[name]:
        op.create_index(index, name, index_columns)
    copied = ", ".join(c.name for c in _columns(name, None))
    if partitioned:
        partitions.create_default(conn, name)
        months = conn.execute(
            sa.text("SELECT DISTINCT date_trunc('month', published_at AT TIME ZONE 'UTC') FROM articles")
        ).scalars()
        partitions.ensure_partitions_on(
            conn, datetime.now(UTC), months=[m for m in months if m is not None], tables=[name]
        )
        # Every raw row has its article (the foreign key cascades), so the join loses nothing.
        op.execute(
            f"INSERT INTO {name} ({copied}, published_at) "
            f"SELECT {', '.join(f'o.{c}' for c in copied.split(', '))}, a.published_at "
            f"FROM {old} o JOIN articles a ON a.id = o.article_id"
        )
    else:
        op.execute(f"INSERT INTO {name} ({copied}) SELECT {copied} FROM {old}")
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {name}.id")
    for statement in create_triggers_sql("postgresql", table):
        op.execute(statement)


def _sqlite_upgrade(table: CurrentTable) -> None:
    name = table.raw
    for statement in drop_triggers_sql("sqlite", table):
        op.execute(statement)
    op.add_column(name, sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        f"UPDATE {name} SET published_at = "
        f"(SELECT a.published_at FROM articles a WHERE a.id = {name}.article_id)"
    )
    with op.batch_alter_table(name) as batch:
        batch.alter_column("published_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_constraint(_OLD_UNIQUE[name][0], type_="unique")
        batch.create_unique_constraint(_NEW_UNIQUE[name], [*_OLD_UNIQUE[name][1], "published_at"])
    # Batch mode rebuilt the table, and a rebuilt SQLite table has lost its triggers.
    for statement in create_triggers_sql("sqlite", table):
        op.execute(statement)


def _sqlite_downgrade(table: CurrentTable) -> None:
    name = table.raw
    for statement in drop_triggers_sql("sqlite", table):
        op.execute(statement)
    with op.batch_alter_table(name) as batch:
        batch.drop_constraint(_NEW_UNIQUE[name], type_="unique")
        batch.create_unique_constraint(_OLD_UNIQUE[name][0], _OLD_UNIQUE[name][1])
        batch.drop_column("published_at")
    for statement in create_triggers_sql("sqlite", table):
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in (PREDICTIONS, ENTITY_PREDICTIONS):
        if dialect == "postgresql":
            _rebuild(table, partitioned=True)
        else:
            _sqlite_upgrade(table)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in (PREDICTIONS, ENTITY_PREDICTIONS):
        if dialect == "postgresql":
            _rebuild(table, partitioned=False)
        else:
            _sqlite_downgrade(table)
