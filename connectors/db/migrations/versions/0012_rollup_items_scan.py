"""rollup_items: the exact publication time and the answering model versions, so that the alert
scan sums an hour not folded yet from it

Revision ID: 0012
Revises: 0011

With the newest two hours of 10 M articles a month not folded, one alert scan still looked up
each of those hours' articles' answers (and those of the minute each bucket edge cuts): 1.6 s
of its 2.2-3.0 s. The scan judges a point by the exact instant and leaves out points another
model version labelled, so it needs each row's publication time and the versions of the
article's sentiment answer and of a topic row's topic answer (alerts/series.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connectors.db import rollup_items

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _added() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sentiment_version", sa.String(length=100), nullable=True),
        sa.Column("key_version", sa.String(length=100), nullable=True),
    )


_INDEX = "ix_rollup_items_dimension_published_at"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in rollup_items.drop_triggers_sql(dialect):
        op.execute(statement)
    for column in _added():
        op.add_column("rollup_items", column)
    # Triggers before the fill, as in 0011: creating them locks the current tables against
    # writes until the migration commits, so no answer lands between the fill's read and them.
    for statement in rollup_items.create_triggers_sql(dialect):
        op.execute(statement)
    for statement in rollup_items.fill_sql(dialect):
        op.execute(statement)
    op.create_index(_INDEX, "rollup_items", ["dimension", "published_at"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in rollup_items.drop_triggers_sql(dialect):
        op.execute(statement)
    op.drop_index(_INDEX, table_name="rollup_items")
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35+): a batch copy of the table would trip
    # over the series views that read it.
    for column in _added():
        op.execute(f"ALTER TABLE rollup_items DROP COLUMN {column.name}")
    for statement in rollup_items.create_triggers_sql(dialect, scan=False):
        op.execute(statement)
