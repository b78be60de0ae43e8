"""instruction_heads: heads taught per instruction (finsent instructions teach) and their verdicts

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "instruction_heads",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("instruction", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("head", sa.JSON(), nullable=False),
        sa.Column("label_count", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instruction_heads")),
    )
    op.create_index(
        "ix_instruction_heads_lookup",
        "instruction_heads",
        ["model_version", "status", "instruction"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_instruction_heads_lookup", table_name="instruction_heads")
    op.drop_table("instruction_heads")
