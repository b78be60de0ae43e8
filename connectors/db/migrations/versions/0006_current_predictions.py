"""current_predictions and current_entity_predictions: each key's latest answer, kept by triggers,
read by the views instead of ranking every stored prediction; an index on articles.ingested_at

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connectors.db.current import TABLES, create_triggers_sql, drop_triggers_sql, fill_sql
from connectors.db.views import create_views_sql, drop_views_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _answer_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("distribution", sa.JSON(), nullable=False),
        sa.Column("zero_shot", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_views_sql(dialect, entities=True):
        op.execute(statement)
    op.create_table(
        "current_predictions",
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("instruction", sa.String(length=100), nullable=False),
        sa.Column("prediction_id", BIG_ID, nullable=False),
        *_answer_columns(),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_current_predictions_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", "instruction", name=op.f("pk_current_predictions")),
    )
    op.create_table(
        "current_entity_predictions",
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=False),
        sa.Column("instruction", sa.String(length=100), nullable=False),
        sa.Column("entity_prediction_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=16), nullable=True),
        sa.Column("found", sa.Boolean(), nullable=False),
        *_answer_columns(),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_current_entity_predictions_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "article_id", "entity", "instruction", name=op.f("pk_current_entity_predictions")
        ),
    )
    op.create_index(
        "ix_current_entity_predictions_ticker", "current_entity_predictions", ["ticker", "instruction"]
    )
    op.create_index("ix_articles_ingested_at", "articles", ["ingested_at"])
    for table in TABLES:
        # Triggers first, then the fill, in the migration's transaction: CREATE TRIGGER locks the
        # raw table against writes until the migration commits (PostgreSQL), so a row the worker
        # writes meanwhile is either already there for the fill or waits and meets the trigger.
        # Filled first, a row committed between the fill and the trigger would never be current.
        for statement in create_triggers_sql(dialect, table):
            op.execute(statement)
        op.execute(fill_sql(table))
    for statement in create_views_sql(dialect, entities=True, current=True, rollups=False):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_views_sql(dialect, entities=True):
        op.execute(statement)
    for table in TABLES:
        for statement in drop_triggers_sql(dialect, table):
            op.execute(statement)
    op.drop_index("ix_articles_ingested_at", table_name="articles")
    op.drop_index("ix_current_entity_predictions_ticker", table_name="current_entity_predictions")
    op.drop_table("current_entity_predictions")
    op.drop_table("current_predictions")
    for statement in create_views_sql(dialect, entities=True, current=False):
        op.execute(statement)
