"""Conditionals of an experiment (JSON list, null for none).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    """Add the column."""
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("conditionals_json", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("conditionals_json")
