"""Projects, AI experiments (project, runs_only), run reservations and runs' tracked fields.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the projects table, add the columns and indexes."""
    op.create_table(
        "projects",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("client_id", Id, sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("reference_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.UniqueConstraint("client_id", "reference_id", name="uq_projects_client_reference"),
    )
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("project", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("runs_only", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_index("ix_experiments_project", "experiments", ["client_id", "project", "id"])
    op.create_table(
        "run_reservations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_run_reservations_experiment", "run_reservations", ["experiment_id", "expires_at"]
    )
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("tracking_json", sa.Text, nullable=True))
    op.create_index("ix_training_runs_project", "training_runs", ["client_id", "project", "id"])


def downgrade() -> None:
    """Drop the indexes, columns and the projects table."""
    op.drop_index("ix_training_runs_project", "training_runs")
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("tracking_json")
    op.drop_table("run_reservations")
    op.drop_index("ix_experiments_project", "experiments")
    with op.batch_alter_table("experiments") as batch:
        for column in ("runs_only", "project"):
            batch.drop_column(column)
    op.drop_table("projects")
