"""Runs of AI experiments and projects (sigopt-runs-wire.md §2.2-2.8, §3): create, fetch,
list, MERGE/PUT, delete.

A run of an AI experiment gets its suggestion inside the create call from the Core suggestion
service (same optimizer, pool and no-duplicate guarantees); the run row is inserted in the
suggestion's own transaction. Ending the run (MERGE/PUT to completed or failed) makes its one
observation (services/run_endings.py). Project runs (no experiment) only record.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from suggestion_server.domain.conditionals import conditionals_of
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import pagination_json
from suggestion_server.services.run_endings import observe_if_ended
from suggestion_server.services.run_render import (
    fields_of,
    run_json,
    store_fields,
    suggested_sources,
)
from suggestion_server.services.suggestions import create_suggestion
from suggestion_server.storage.models import Suggestion, TrainingRun
from suggestion_server.storage.projects import project_exists, project_for_client
from suggestion_server.storage.queries import Page, experiment_for_client, page_of
from suggestion_server.storage.runs import (
    client_run,
    experiment_id_of_run,
    lock_experiment_for_runs,
    run_filter_conditions,
    take_run_reservation,
)
from suggestion_server.wire.errors import ApiError, bad_request, not_found
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.run_filters import RunFilter
from suggestion_server.wire.runs import (
    EMPTY_FIELDS,
    ENDED_STATES,
    RunFields,
    applied,
    create_body,
    update_body,
)
from suggestion_server.wire.schemas import SuggestionCreate

log = logging.getLogger("suggestion_server.runs")


def _new_fields(project: str, body: dict[str, Any]) -> RunFields:
    """The fields of a new run from a checked create body."""
    empty: RunFields = {**EMPTY_FIELDS, "name": None, "state": "active", "project": project}
    return applied(empty, body, replace=False)


def _new_row(client_id: int, fields: RunFields, now: int) -> TrainingRun:
    run = TrainingRun(
        client_id=client_id,
        created=now,
        updated=now,
        completed=now if fields["state"] in ENDED_STATES else None,
        checkpoint_count=0,
    )
    store_fields(run, fields)
    return run


def _ai_experiment(session: Session, client_id: int, experiment_id: int) -> Any:
    experiment = experiment_for_client(session, client_id, experiment_id)
    if not experiment.runs_only:
        # The open-source server's answer: runs are created in AI experiments only.
        raise not_found(
            f"Experiment {experiment_id} is not an AI experiment (runs are created in AI "
            "experiments, or in projects)"
        )
    if experiment.state == "deleted":
        raise bad_request(f"Cannot create training runs for deleted experiment {experiment_id}")
    return experiment


def create_experiment_run(
    ctx: ServerContext, client_id: int, experiment_id: int, raw_body: Any, holder: str | None
) -> dict[str, Any]:
    """A run of an AI experiment with a suggestion served now, or an explicit one when the
    body's ``assignments`` name experiment parameters (then all of them); a body ``state``
    completed/failed ends it at once (one observation). It takes ``holder``'s run reservation
    (services/run_reservations.py)."""
    body = create_body(raw_body)
    with ctx.store.read() as session:
        experiment = _ai_experiment(session, client_id, experiment_id)
        project = str(experiment.project)
        parameters = {p["name"] for p in json.loads(experiment.parameters_json)}
        parameters |= {c["name"] for c in conditionals_of(experiment)}  # assigned like them
    fields = _new_fields(project, body)
    explicit = {k: v for k, v in fields["assignments"].items() if k in parameters}
    extra = {k: v for k, v in fields["assignments"].items() if k not in parameters}

    def insert_run(session: Session, suggestion: Suggestion) -> dict[str, Any]:
        served = json.loads(suggestion.assignments_json)
        run_fields = {**fields, **suggested_sources(served)}
        for key in ("assignments_meta", "assignments_sources"):
            run_fields[key] = {**run_fields[key], **fields[key]}
        run_fields["assignments"] = {**served, **extra}
        run = _new_row(client_id, run_fields, ctx.now())
        run.experiment_id = experiment_id
        run.suggestion_id = suggestion.id
        session.add(run)
        session.flush()
        take_run_reservation(session, experiment_id, holder)
        log.info(
            "run created experiment=%s training_run=%s suggestion=%s",
            experiment_id,
            run.id,
            suggestion.id,
        )
        return run_json(run)

    # The suggestion carries the run's metadata as created, so who holds the run shows where the
    # Core API looks (optfleet's agent keeps its lease and claims there: docs/agent.md).
    spec = SuggestionCreate(assignments=explicit or None, metadata=fields["metadata"])
    created = create_suggestion(ctx, client_id, experiment_id, spec, on_insert=insert_run)
    if fields["state"] not in ENDED_STATES:
        return created
    # Created ended (an upload of a finished run): observed at once, as a MERGE would.
    with ctx.store.write() as session:
        locked = lock_experiment_for_runs(session, client_id, experiment_id)
        run = client_run(session, client_id, int(created["id"]), lock=True)
        observe_if_ended(ctx, session, locked, run)
        session.flush()
        return run_json(run)


def create_project_run(
    ctx: ServerContext, client_id: int, project: str, raw_body: Any
) -> dict[str, Any]:
    """A run outside any experiment: ``experiment``/``suggestion`` null, ``assignments`` what
    the body gives (default ``{}``); it never makes an observation."""
    body = create_body(raw_body)
    with ctx.store.write() as session:
        project_for_client(session, client_id, project)
        run = _new_row(client_id, _new_fields(project, body), ctx.now())
        session.add(run)
        session.flush()
        log.info("run created project=%s training_run=%s", project, run.id)
        return run_json(run)


# sigopt.upload_runs sends at most this many runs per request (its max_batch_size default).
BATCH_MAX_RUNS = 10_000


def _batch_bodies(raw_body: Any) -> list[dict[str, Any]]:
    """The checked run bodies of ``{"runs": [...]}``; a 400 naming ``runs`` or ``runs[i]``."""
    runs = raw_body.get("runs") if isinstance(raw_body, dict) else None
    if not isinstance(runs, list) or not runs:
        raise bad_request(
            f"Invalid value for runs: {short_json(runs)} - expected a non-empty list of runs"
        )
    if len(runs) > BATCH_MAX_RUNS:
        raise bad_request(f"Invalid value for runs: {len(runs)} runs, at most {BATCH_MAX_RUNS}")
    unknown = sorted(set(raw_body) - {"runs", "fields"})
    if unknown:
        raise bad_request(f"Unknown json key {unknown[0]!r} - expected runs (and fields)")
    bodies = []
    for index, run in enumerate(runs):
        try:
            bodies.append(create_body(run))
        except ApiError as exc:
            raise bad_request(f"runs[{index}]: {exc.message}") from None
    return bodies


def create_project_runs(
    ctx: ServerContext, client_id: int, project: str, raw_body: Any
) -> dict[str, Any]:
    """``sigopt.upload_runs``: every run of ``{"runs": [...]}`` created in the project, in one
    transaction (a bad one refuses them all, naming it), as a pagination of the runs."""
    bodies = _batch_bodies(raw_body)
    with ctx.store.write() as session:
        project_for_client(session, client_id, project)
        now = ctx.now()
        rows = [_new_row(client_id, _new_fields(project, body), now) for body in bodies]
        session.add_all(rows)
        session.flush()
        log.info("runs uploaded project=%s count=%s", project, len(rows))
        paging: dict[str, str | None] = {"before": None, "after": None}
        return pagination_json(Page(rows, len(rows), paging), [run_json(r) for r in rows])


def fetch_run(ctx: ServerContext, client_id: int, run_id: int) -> dict[str, Any]:
    """One non-deleted run of the client (Core training runs too)."""
    with ctx.store.read() as session:
        return run_json(client_run(session, client_id, run_id))


def list_project_runs(
    ctx: ServerContext,
    client_id: int,
    project: str,
    req: PageRequest,
    *,
    filters: list[RunFilter],
    include_deleted: bool,
) -> dict[str, Any]:
    """A page of the project's runs matching every filter, newest first."""
    with ctx.store.read() as session:
        project_for_client(session, client_id, project)
        conditions: list[ColumnElement[bool]] = [
            TrainingRun.client_id == client_id,
            TrainingRun.project == project,
        ]
        if not include_deleted:
            conditions.append(TrainingRun.deleted.is_(False))
        conditions.extend(run_filter_conditions(filters))
        page = page_of(session, TrainingRun, conditions, req)
        return pagination_json(page, [run_json(r) for r in page.rows])


def _check_fixed(session: Session, run: TrainingRun, fields: RunFields) -> None:
    """The assignments of the run's suggestion cannot change (the observation reports them)."""
    if run.suggestion_id is None:
        return
    suggestion = session.get(Suggestion, run.suggestion_id)
    fixed = {} if suggestion is None else json.loads(suggestion.assignments_json)
    for name, value in fixed.items():
        if fields["assignments"].get(name) != value:
            raise bad_request(
                f"Invalid value for assignments.{name}: "
                f"{short_json(fields['assignments'].get(name))} - the run's suggestion assigned "
                f"{short_json(value)}, which cannot change"
            )


def _check_project(session: Session, client_id: int, run: TrainingRun, project: Any) -> None:
    if project == run.project:
        return
    if run.experiment_id is not None:
        raise bad_request(
            f"Invalid value for project: {short_json(project)} - a run of an AI experiment "
            f"stays in its experiment's project ({run.project})"
        )
    if not project_exists(session, client_id, project):
        raise bad_request(f"Invalid value for project: {short_json(project)} - no such project")


def update_run(
    ctx: ServerContext, client_id: int, run_id: int, raw_body: Any, *, replace: bool
) -> dict[str, Any]:
    """MERGE (``replace`` False: objects merge, a null deletes) or PUT (each given key
    replaced). A change that leaves an AI-experiment run completed or failed for the first time
    makes its observation, once: the experiment's lock, then the run's, serialize endings.
    Reaches archived runs too (``{"deleted": false}`` restores one)."""
    body = update_body(raw_body)
    with ctx.store.write() as session:
        experiment_id = experiment_id_of_run(session, client_id, run_id)
        experiment = None
        if experiment_id is not None and "state" in body:
            experiment = lock_experiment_for_runs(session, client_id, experiment_id)
        run = client_run(session, client_id, run_id, lock=True, include_deleted=True)
        fields = applied(fields_of(run), body, replace=replace)
        if "assignments" in body:
            _check_fixed(session, run, fields)
        if "project" in body:
            _check_project(session, client_id, run, fields["project"])
        now = ctx.now()
        store_fields(run, fields)
        run.updated = now
        if run.state in ENDED_STATES and run.completed is None:
            run.completed = now
        if experiment is not None:
            observe_if_ended(ctx, session, experiment, run)
        session.flush()
        return run_json(run)


def delete_run(ctx: ServerContext, client_id: int, run_id: int) -> None:
    """Archive (soft delete): the run leaves lists and progress, and gives its budget back."""
    with ctx.store.write() as session:
        run = client_run(session, client_id, run_id, lock=True)
        run.deleted = True
        run.updated = ctx.now()
