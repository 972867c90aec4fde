"""The suggestion pool: suggestions computed ahead of demand, handed out by suggestion creates.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table and the demand index."""
    op.create_table(
        "suggestion_pool",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("assignments_json", sa.Text, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("observation_mark", sa.BigInteger, nullable=False),
        sa.Column("stale_after", sa.Integer, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_suggestion_pool_experiment", "suggestion_pool", ["experiment_id", "rank", "id"]
    )
    # Demand is measured by counting an experiment's suggestions newer than a mark.
    op.create_index("ix_suggestions_experiment_id", "suggestions", ["experiment_id", "id"])


def downgrade() -> None:
    """Drop the table and the index."""
    op.drop_index("ix_suggestions_experiment_id", "suggestions")
    op.drop_index("ix_suggestion_pool_experiment", "suggestion_pool")
    op.drop_table("suggestion_pool")
