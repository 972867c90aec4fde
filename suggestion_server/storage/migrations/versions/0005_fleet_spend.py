"""Fleet spend: one shared estimate per experiment, refreshed by one agent at a time.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "fleet_spend",
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("usd", sa.Float, nullable=True),
        sa.Column("usd_per_s", sa.Float, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("measured_at", sa.Float, nullable=True),
        sa.Column("measured_by", sa.String(64), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("fleet_spend")
