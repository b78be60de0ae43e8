"""rollup_scan_minutes: per-minute counts the alert scan's series sum (connectors/db/scan_rollup.py)

Revision ID: 0009
Revises: 0008

Every hour of history is marked dirty, so the first folds count its minutes (and recount its
hourly rows, unchanged); the series and views are exact meanwhile, counted live.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connectors.db import rollups

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_scan_minutes",
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("dimension", sa.String(length=100), nullable=False),
        sa.Column("series_key", sa.String(length=200), nullable=False),
        sa.Column("sentiment_version", sa.String(length=100), nullable=False),
        sa.Column("key_version", sa.String(length=100), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("negative", sa.BigInteger(), nullable=False),
        sa.Column("rated", sa.BigInteger(), nullable=False),
        sa.Column("signed_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "minute",
            "dimension",
            "series_key",
            "sentiment_version",
            "key_version",
            name=op.f("pk_rollup_scan_minutes"),
        ),
    )
    op.execute(rollups.mark_all_sql(op.get_bind().dialect.name))


def downgrade() -> None:
    op.drop_table("rollup_scan_minutes")
