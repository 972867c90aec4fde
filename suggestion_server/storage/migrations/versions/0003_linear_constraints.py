"""Linear constraints of an experiment (JSON list, null for none).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Add the column."""
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("linear_constraints_json", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("linear_constraints_json")
