"""rollup_items: each article's counted rows, so that an hour not folded yet is summed by one
index range scan

Revision ID: 0011
Revises: 0010

With the newest two hours of 10 M articles a month not folded, every series view and dashboard
call spent 0.5-1.9 s looking up each of those hours' articles' answers (connectors/db/rollups.py
counted them live from the current tables). The table is filled from the views for the history
stored before it, and kept by triggers from then on (connectors/db/rollup_items.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connectors.db import rollup_items
from connectors.db.views import series_views_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "rollup_items",
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("dimension", sa.String(length=8), nullable=False),
        sa.Column("series_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=16), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("sentiment", sa.String(length=100), nullable=True),
        sa.Column("sentiment_signed", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_rollup_items_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", "dimension", "series_key", name=op.f("pk_rollup_items")),
    )
    op.create_index(op.f("ix_rollup_items_dimension_hour"), "rollup_items", ["dimension", "hour"])
    # Triggers first: creating them locks the current tables against writes until the migration
    # commits, so no answer lands between the fill's read and the triggers taking over.
    # scan=False: this table's columns; migration 0012 adds the scan's and replaces the triggers.
    for statement in rollup_items.create_triggers_sql(dialect, scan=False):
        op.execute(statement)
    for statement in rollup_items.fill_sql(dialect, scan=False):
        op.execute(statement)
    for statement in series_views_sql(dialect, items=True):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in series_views_sql(dialect, items=False):
        op.execute(statement)
    for statement in rollup_items.drop_triggers_sql(dialect):
        op.execute(statement)
    op.drop_index(op.f("ix_rollup_items_dimension_hour"), table_name="rollup_items")
    op.drop_table("rollup_items")
