"""rollup_entity_hourly and the v_entity_sentiment_hourly|daily views it backs

Revision ID: 0010
Revises: 0009

"Entities of the last week, most mentioned first" read every entity answer of the week through
v_entity_sentiment (0.5 s at 1 M articles, linear in the volume). The hourly entity rollup is
kept exact like the topic and ticker ones (connectors/db/rollups.py): the same dirty hours, the
same fold. Every hour of history is marked dirty so that the first folds count it; the views are
exact meanwhile, counted live.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connectors.db import rollups
from connectors.db.views import drop_entity_series_views_sql, entity_series_views_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "rollup_entity_hourly",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("negative", sa.BigInteger(), nullable=False),
        sa.Column("neutral", sa.BigInteger(), nullable=False),
        sa.Column("positive", sa.BigInteger(), nullable=False),
        sa.Column("rated", sa.BigInteger(), nullable=False),
        sa.Column("signed_sum", sa.Float(), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("hour", "entity", "kind", "ticker", name=op.f("pk_rollup_entity_hourly")),
    )
    for statement in entity_series_views_sql(dialect, items=False):
        op.execute(statement)
    op.execute(rollups.mark_all_sql(dialect))


def downgrade() -> None:
    for statement in drop_entity_series_views_sql():
        op.execute(statement)
    op.drop_table("rollup_entity_hourly")
