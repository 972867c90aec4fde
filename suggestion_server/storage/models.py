"""The server's tables (SQLAlchemy 2 ORM). The Alembic migrations create exactly these.

JSON payloads (assignments, values, metadata, parameters, metrics) are stored as text so that key
order round-trips as the wire promises; ``objective_value`` duplicates the first optimized metric's
value of an observation so that ``best_observation`` is one indexed query.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL, but SQLite only autoincrements a column declared exactly INTEGER.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the server's tables."""


class Client(Base):
    """A team: it owns experiments; its tokens see only its experiments."""

    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    created: Mapped[int] = mapped_column(BigInteger)


class Project(Base):
    """A project of a client: groups AI experiments and runs. ``reference_id`` is the string id
    the wire calls ``id`` (unique per client)."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id"))
    reference_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("client_id", "reference_id", name="uq_projects_client_reference"),
    )


class Token(Base):
    """An API token, stored as the hex sha256 of the token text. ``experiment_id`` set: the
    token is scoped to that one experiment of its client (docs/api.md, "Experiment-scoped
    tokens"); null: an operator token with every right of its client."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created: Mapped[int] = mapped_column(BigInteger)
    experiment_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("experiments.id"), nullable=True
    )
    # Rotation (docs/api.md, "Token rotation"): when it last happened, and the value it replaced
    # (its hash), still accepted until ``previous_until`` (Unix seconds).
    rotated: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    previous_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    __table_args__ = (Index("ix_tokens_previous_hash", "previous_hash"),)


class RetiredTokenHash(Base):
    """The hash of a value that no longer authenticates (``reason`` ``revoked_token`` or
    ``rotated_out``), kept so that a refusal names why and which token (never the value)."""

    __tablename__ = "retired_token_hashes"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(Id)
    reason: Mapped[str] = mapped_column(String(32))
    retired: Mapped[int] = mapped_column(BigInteger)


class AuthRefusal(Base):
    """How many requests were refused (401/403) for one reason, and when the last one was."""

    __tablename__ = "auth_refusals"
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[int] = mapped_column(BigInteger)


class Experiment(Base):
    """An experiment; ``version`` changes whenever rows the suggestion engine has read change."""

    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id"))
    name: Mapped[str] = mapped_column(String(400))
    type: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="active")
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    parameters_json: Mapped[str] = mapped_column(Text)
    metrics_json: Mapped[str] = mapped_column(Text)
    observation_budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parallel_bandwidth: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    linear_constraints_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The conditionals (JSON list of {name, values}); null for none (domain/conditionals.py).
    conditionals_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The resolved ``training_monitor`` (docs/api.md, "Training runs and early stopping").
    training_monitor_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # AI experiments (docs/api.md, "Projects, AI experiments and runs"): the project's string id,
    # and ``runs_only`` (suggestions and observations come from runs only). ``observation_budget``
    # holds an AI experiment's ``budget``.
    project: Mapped[str | None] = mapped_column(String(32), nullable=True)
    runs_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_experiments_client_id", "client_id", "id"),
        Index("ix_experiments_project", "client_id", "project", "id"),
    )


class Suggestion(Base):
    """A suggestion; ``closed`` is set once any observation references it and never unset."""

    __tablename__ = "suggestions"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"))
    assignments_json: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_suggestions_experiment", "experiment_id", "deleted", "closed", "id"),
        # The suggestion pool counts an experiment's newest suggestions to measure demand.
        Index("ix_suggestions_experiment_id", "experiment_id", "id"),
    )


class QueuedSuggestion(Base):
    """Assignments queued by a user; the next suggestion created for the experiment takes the
    oldest one (and deletes it) instead of asking the engine."""

    __tablename__ = "queued_suggestions"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"))
    assignments_json: Mapped[str] = mapped_column(Text)
    created: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_queued_suggestions_experiment", "experiment_id", "id"),)


class PooledSuggestion(Base):
    """A suggestion computed ahead of demand, waiting to be handed out (docs/api.md, "The
    suggestion pool"). Never visible in the API: handing it out deletes it and inserts a
    ``Suggestion`` with the request's time and metadata. ``rank`` 0 is the engine's, 1 padding
    (served after the engine's). It is stale once the experiment's ``version`` changed or
    ``stale_after`` observations newer than ``observation_mark`` exist."""

    __tablename__ = "suggestion_pool"
    # Chosen by the server (random 62-bit), so the engine can key the entry before it is stored.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"))
    assignments_json: Mapped[str] = mapped_column(Text)
    rank: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    observation_mark: Mapped[int] = mapped_column(BigInteger)
    stale_after: Mapped[int] = mapped_column(Integer)
    created: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_suggestion_pool_experiment", "experiment_id", "rank", "id"),)


class Observation(Base):
    """An observation; ``values_json`` is the rendered ``values`` list (empty when failed)."""

    __tablename__ = "observations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"))
    suggestion_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("suggestions.id"), nullable=True
    )
    assignments_json: Mapped[str] = mapped_column(Text)
    values_json: Mapped[str] = mapped_column(Text)
    objective_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_observations_experiment", "experiment_id", "deleted", "id"),
        Index("ix_observations_suggestion", "suggestion_id"),
    )


class FleetSpend(Base):
    """An experiment's fleet-wide spend estimate, shared by its agents (docs/api.md, "Fleet
    spend"). One agent at a time holds the refresh claim (``claimed_until``) and reports a new
    figure; the others read this row instead of each asking EC2."""

    __tablename__ = "fleet_spend"
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"), primary_key=True)
    usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    usd_per_s: Mapped[float] = mapped_column(Float, default=0.0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    instances: Mapped[int] = mapped_column(Integer, default=0)
    measured_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    measured_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[float] = mapped_column(Float, default=0.0)


class TrainingRun(Base):
    """A training run: one evaluation of a suggestion, reporting checkpoints on its way.

    ``suggestion_id`` is unique (one run per suggestion, so a retried create finds the same
    run); ``experiment_id`` and ``suggestion_id`` are null for runs outside an experiment, and
    ``project`` is kept for those (issue 20). ``observation_id`` is set once an observation for
    the suggestion closes the run. ``rung_step`` is the highest early-stopping rung the run has
    a value at; ``stopped_at_step``/``stopping_reason`` record the first stop answered.
    """

    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id"))
    project: Mapped[str | None] = mapped_column(String(32), nullable=True)
    experiment_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("experiments.id"), nullable=True
    )
    suggestion_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("suggestions.id"), nullable=True
    )
    observation_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("observations.id"), nullable=True
    )
    name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    values_json: Mapped[str] = mapped_column(Text, default="{}")
    assignments_json: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    completed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    checkpoint_count: Mapped[int] = mapped_column(Integer, default=0)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # No foreign key: checkpoints reference runs, and a cycle would complicate every DDL.
    best_checkpoint_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    rung_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stopped_at_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stopping_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # What a SigOpt >= 8 client logs besides params, values and metadata (datasets, logs, model,
    # source_code, sys/dev metadata, favorite, assignments_meta/sources): one JSON object.
    tracking_json: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("suggestion_id", name="uq_training_runs_suggestion"),
        Index("ix_training_runs_experiment", "experiment_id", "deleted", "id"),
        Index("ix_training_runs_project", "client_id", "project", "id"),
    )


class Checkpoint(Base):
    """One checkpoint of a training run, with the stopping decision answered for it (stored,
    so a re-post of the same step gets the same answer)."""

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    training_run_id: Mapped[int] = mapped_column(Id, ForeignKey("training_runs.id"))
    step: Mapped[int] = mapped_column(BigInteger)
    values_json: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    should_stop: Mapped[bool] = mapped_column(Boolean, default=False)
    stopping_reasons_json: Mapped[str] = mapped_column(Text, default="{}")

    __table_args__ = (UniqueConstraint("training_run_id", "step", name="uq_checkpoints_run_step"),)


class RunReservation(Base):
    """One run of an AI experiment's budget promised to a ``GET /aiexperiments/{id}`` answer
    (services/run_reservations.py): a run created takes one, its ``holder``'s (the client's
    connection) when there is one; unused, it lapses at ``expires_at`` (Unix seconds)."""

    __tablename__ = "run_reservations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"))
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_run_reservations_experiment", "experiment_id", "expires_at"),)


class RungValue(Base):
    """A run's metric value when it first reached an early-stopping rung (a step of the
    geometric ladder). A decision at a rung reads only that rung's rows."""

    __tablename__ = "rung_values"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id"))
    rung_step: Mapped[int] = mapped_column(BigInteger)
    training_run_id: Mapped[int] = mapped_column(Id, ForeignKey("training_runs.id"))
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint(
            "experiment_id", "rung_step", "training_run_id", name="uq_rung_values_run"
        ),
    )
