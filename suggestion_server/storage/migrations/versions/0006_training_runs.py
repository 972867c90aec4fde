"""Training runs, their checkpoints, early-stopping rung values, experiments' training_monitor.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the column and create the tables."""
    op.add_column("experiments", sa.Column("training_monitor_json", sa.Text, nullable=True))
    op.create_table(
        "training_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("client_id", Id, sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("project", sa.String(32), nullable=True),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=True),
        sa.Column("suggestion_id", Id, sa.ForeignKey("suggestions.id"), nullable=True),
        sa.Column("observation_id", Id, sa.ForeignKey("observations.id"), nullable=True),
        sa.Column("name", sa.String(400), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("values_json", sa.Text, nullable=False),
        sa.Column("assignments_json", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("completed", sa.BigInteger, nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("checkpoint_count", sa.Integer, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=True),
        sa.Column("best_checkpoint_id", Id, nullable=True),
        sa.Column("best_value", sa.Float, nullable=True),
        sa.Column("rung_step", sa.BigInteger, nullable=True),
        sa.Column("stopped_at_step", sa.BigInteger, nullable=True),
        sa.Column("stopping_reason", sa.String(64), nullable=True),
        sa.UniqueConstraint("suggestion_id", name="uq_training_runs_suggestion"),
    )
    op.create_index(
        "ix_training_runs_experiment", "training_runs", ["experiment_id", "deleted", "id"]
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("training_run_id", Id, sa.ForeignKey("training_runs.id"), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("values_json", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("should_stop", sa.Boolean, nullable=False),
        sa.Column("stopping_reasons_json", sa.Text, nullable=False),
        sa.UniqueConstraint("training_run_id", "step", name="uq_checkpoints_run_step"),
    )
    op.create_table(
        "rung_values",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", Id, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("rung_step", sa.BigInteger, nullable=False),
        sa.Column("training_run_id", Id, sa.ForeignKey("training_runs.id"), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.UniqueConstraint(
            "experiment_id", "rung_step", "training_run_id", name="uq_rung_values_run"
        ),
    )


def downgrade() -> None:
    """Drop the tables and the column."""
    for table in ("rung_values", "checkpoints", "training_runs"):
        op.drop_table(table)
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("training_monitor_json")
