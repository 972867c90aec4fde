"""Token rotation and refusal counts: a token's previous hash accepted until a deadline, the
hashes of revoked and rotated-out tokens (to name a refusal's reason and token), and the count of
refused requests per reason.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the columns and the two tables (existing tokens were never rotated)."""
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("rotated", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_until", sa.BigInteger, nullable=True))
        batch.create_index("ix_tokens_previous_hash", ["previous_hash"])
    op.create_table(
        "retired_token_hashes",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("token_id", Id, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("retired", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "auth_refusals",
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("auth_refusals")
    op.drop_table("retired_token_hashes")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_previous_hash")
        batch.drop_column("previous_until")
        batch.drop_column("previous_hash")
        batch.drop_column("rotated")
