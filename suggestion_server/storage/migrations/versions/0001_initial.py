"""Initial schema: clients, tokens, experiments, suggestions, observations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "clients",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("client_id", Id, sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tokens_client_id", "tokens", ["client_id"])
    op.create_table(
        "experiments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("client_id", Id, sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("name", sa.String(400), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("parameters_json", sa.Text, nullable=False),
        sa.Column("metrics_json", sa.Text, nullable=False),
        sa.Column("observation_budget", sa.Integer, nullable=True),
        sa.Column("parallel_bandwidth", sa.Integer, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_experiments_client_id", "experiments", ["client_id", "id"])
    op.create_table(
        "suggestions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("assignments_json", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_suggestions_experiment", "suggestions", ["experiment_id", "deleted", "closed", "id"]
    )
    op.create_table(
        "observations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("suggestion_id", Id, sa.ForeignKey("suggestions.id"), nullable=True),
        sa.Column("assignments_json", sa.Text, nullable=False),
        sa.Column("values_json", sa.Text, nullable=False),
        sa.Column("objective_value", sa.Float, nullable=True),
        sa.Column("failed", sa.Boolean, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_observations_experiment", "observations", ["experiment_id", "deleted", "id"]
    )
    op.create_index("ix_observations_suggestion", "observations", ["suggestion_id"])


def downgrade() -> None:
    """Drop the tables."""
    for table in ("observations", "suggestions", "experiments", "tokens", "clients"):
        op.drop_table(table)
