"""Experiment-scoped tokens: the one experiment a token may use (null: an operator token).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the column (existing tokens stay operator tokens)."""
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("experiment_id", Id, nullable=True))
        batch.create_foreign_key(
            "fk_tokens_experiment_id", "experiments", ["experiment_id"], ["id"]
        )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("tokens") as batch:
        batch.drop_constraint("fk_tokens_experiment_id", type_="foreignkey")
        batch.drop_column("experiment_id")
