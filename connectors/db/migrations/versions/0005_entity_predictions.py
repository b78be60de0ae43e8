"""entity_predictions and instruction scope: entity-level answers, and views that use them

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connectors.db.views import create_views_sql, drop_views_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_views_sql(dialect, entities=False):
        op.execute(statement)
    with op.batch_alter_table("instructions") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=16), server_default="article", nullable=False))
    op.create_table(
        "entity_predictions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=16), nullable=True),
        sa.Column("found", sa.Boolean(), nullable=False),
        sa.Column("instruction", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("distribution", sa.JSON(), nullable=False),
        sa.Column("zero_shot", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_entity_predictions_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_predictions")),
        sa.UniqueConstraint(
            "article_id",
            "entity",
            "instruction",
            "model_version",
            name="uq_entity_predictions_key",
        ),
    )
    op.create_index("ix_entity_predictions_article_id", "entity_predictions", ["article_id"])
    op.create_index("ix_entity_predictions_created_at", "entity_predictions", ["created_at"])
    op.create_index("ix_entity_predictions_ticker", "entity_predictions", ["ticker", "instruction"])
    for statement in create_views_sql(dialect, entities=True, current=False):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_views_sql(dialect, entities=True):
        op.execute(statement)
    op.drop_index("ix_entity_predictions_ticker", table_name="entity_predictions")
    op.drop_index("ix_entity_predictions_created_at", table_name="entity_predictions")
    op.drop_index("ix_entity_predictions_article_id", table_name="entity_predictions")
    op.drop_table("entity_predictions")
    with op.batch_alter_table("instructions") as batch:
        batch.drop_column("scope")
    for statement in create_views_sql(dialect, entities=False, current=False):
        op.execute(statement)
