"""Queued suggestions: assignments served by the next suggestion create.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "queued_suggestions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("assignments_json", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_queued_suggestions_experiment", "queued_suggestions", ["experiment_id", "id"]
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("ix_queued_suggestions_experiment", "queued_suggestions")
    op.drop_table("queued_suggestions")
