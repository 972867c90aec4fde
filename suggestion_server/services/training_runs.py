"""Training runs of Core experiments: create (one per suggestion), fetch, list, update, delete.

A run is the record of one suggestion's evaluation while it trains: checkpoints
(``services.checkpoints``) arrive on it, and an observation for its suggestion ends it. Issue
20's AI-experiment runs are the same record (created with a suggestion the server serves).
"""

from __future__ import annotations

import logging
from typing import Any

from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import pagination_json, training_run_json
from suggestion_server.storage.models import TrainingRun
from suggestion_server.storage.queries import (
    dumps,
    experiment_row_for_client,
    page_of,
    suggestion_and_its_observation,
)
from suggestion_server.storage.training_runs import run_for_client
from suggestion_server.wire.errors import ApiError, bad_request
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.training_runs import TrainingRunCreate, TrainingRunUpdate

log = logging.getLogger("suggestion_server.training_runs")


def create_training_run(
    ctx: ServerContext, client_id: int, experiment_id: int, body: TrainingRunCreate
) -> dict[str, Any]:
    """The run of ``body.suggestion``: created once; a second create for the same suggestion
    returns the same run (an agent retrying after a lost answer gets the run it made)."""
    with ctx.store.write() as session:
        # The experiment's row lock serializes this with observation creation, which ends the
        # suggestion's run: a run is never created beside an observation it did not see.
        experiment = experiment_row_for_client(session, client_id, experiment_id, lock=True)
        if experiment.state == "deleted":
            raise bad_request(f"Cannot create training runs for deleted experiment {experiment_id}")
        found = suggestion_and_its_observation(session, experiment_id, body.suggestion)
        if found is None:
            raise bad_request(f"No suggestion: {body.suggestion} for experiment: {experiment_id}")
        if found.training_run_id is not None:
            existing = session.get(TrainingRun, found.training_run_id)
            if existing is None or existing.deleted:
                raise bad_request(
                    f"The training run {found.training_run_id} of suggestion {body.suggestion} "
                    "was deleted; a suggestion has at most one run"
                )
            return training_run_json(existing)
        if found.closed:
            raise ApiError(
                403,
                f"Suggestion {body.suggestion} is closed (an observation reports it); training "
                "runs are created for open suggestions",
            )
        now = ctx.now()
        run = TrainingRun(
            client_id=client_id,
            experiment_id=experiment_id,
            suggestion_id=body.suggestion,
            name=body.name,
            state="active",
            metadata_json=dumps(body.metadata),
            values_json="{}",
            assignments_json=found.assignments_json,
            created=now,
            updated=now,
            deleted=False,
            checkpoint_count=0,
        )
        session.add(run)
        session.flush()
        log.info(
            "training run created experiment=%s training_run=%s suggestion=%s",
            experiment_id,
            run.id,
            body.suggestion,
        )
        return training_run_json(run)


def fetch_training_run(
    ctx: ServerContext, client_id: int, run_id: int, experiment_id: int | None = None
) -> dict[str, Any]:
    """One non-deleted run (of ``experiment_id`` when the path names one)."""
    with ctx.store.read() as session:
        return training_run_json(
            run_for_client(session, client_id, run_id, experiment_id=experiment_id)
        )


def list_training_runs(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    req: PageRequest,
    *,
    include_deleted: bool,
) -> dict[str, Any]:
    """A page of the experiment's runs, newest first."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        conditions = [TrainingRun.experiment_id == experiment_id]
        if not include_deleted:
            conditions.append(TrainingRun.deleted.is_(False))
        page = page_of(session, TrainingRun, conditions, req)
        return pagination_json(page, [training_run_json(r) for r in page.rows])


def update_training_run(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    run_id: int,
    body: TrainingRunUpdate,
) -> dict[str, Any]:
    """``name``, ``metadata`` (null clears it) and ``state`` (completed or failed; the first
    such change sets ``completed``). Checkpoints go on being accepted until an observation."""
    fields = body.model_fields_set
    with ctx.store.write() as session:
        run = run_for_client(session, client_id, run_id, experiment_id=experiment_id, lock=True)
        now = ctx.now()
        if "name" in fields:
            run.name = body.name
        if "metadata" in fields:
            run.metadata_json = dumps(body.metadata)
        if "state" in fields:
            if body.state is None:
                raise bad_request(
                    "Invalid value for state: null - expected one of completed or failed"
                )
            run.state = body.state
            if run.completed is None:
                run.completed = now
        run.updated = now
        session.flush()
        return training_run_json(run)


def delete_training_run(
    ctx: ServerContext, client_id: int, experiment_id: int, run_id: int
) -> None:
    """Soft delete: the run disappears from fetches and lists (``deleted=true`` shows it)."""
    with ctx.store.write() as session:
        run = run_for_client(session, client_id, run_id, experiment_id=experiment_id, lock=True)
        run.deleted = True
        run.updated = ctx.now()
