"""AI experiments (sigopt-runs-wire.md §2.1): a Core experiment of a project whose suggestions
and observations come from runs only. Created, updated and archived through the Core
experiment service; ``budget`` is stored as ``observation_budget``; progress counts runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from suggestion_server.services import experiments as core
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import experiment_json, pagination_json
from suggestion_server.storage.models import Experiment
from suggestion_server.storage.projects import project_for_client
from suggestion_server.storage.queries import experiment_for_client, page_of
from suggestion_server.storage.runs import RunCounts, delete_experiment_runs, run_counts
from suggestion_server.wire.ai_experiments import ai_message, core_experiment_body
from suggestion_server.wire.errors import ApiError, bad_request, not_found
from suggestion_server.wire.jsonbody import json_object, short_json
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.schemas import ExperimentCreate, ExperimentUpdate, validate_body

T = TypeVar("T")
# Core keys an AI experiment object leaves out (it shows ``budget`` and run progress instead).
_CORE_ONLY_FIELDS = ("observation_budget", "development", "progress")


def progress_json(budget: int | None, counts: RunCounts) -> dict[str, Any]:
    """Run progress; a run consumes budget when it is created (``remaining_budget`` =
    budget - runs, negative after an overshoot, null without a budget)."""
    return {
        "object": "progress",
        "finished_run_count": counts.finished,
        "active_run_count": counts.total - counts.finished,
        "total_run_count": counts.total,
        "remaining_budget": None if budget is None else budget - counts.total,
    }


def ai_experiment_json(row: Experiment, counts: RunCounts) -> dict[str, Any]:
    """The AIExperiment object: the Core experiment object, reshaped."""
    rendered = {k: v for k, v in experiment_json(row, None).items() if k not in _CORE_ONLY_FIELDS}
    rendered.update(
        object="aiexperiment",
        budget=row.observation_budget,
        project=row.project,
        runs_only=True,
        progress=progress_json(row.observation_budget, counts),
    )
    return rendered


def _as_ai(call: Callable[[], T]) -> T:
    """``call`` with Core messages told in the AI experiment's words (``budget``)."""
    try:
        return call()
    except ApiError as exc:
        raise ApiError(exc.status, ai_message(exc.message), **exc.extra) from None


def _check_metrics(body: dict[str, Any]) -> None:
    metrics = body.get("metrics")
    named = isinstance(metrics, list) and all(
        isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"] for m in metrics
    )
    if not metrics or not named:
        raise bad_request(
            f"Invalid value for metrics: {short_json(metrics)} - an AI experiment needs a list "
            "of at least one metric object, each with a name"
        )


def ai_experiment_row(session: Any, client_id: int, experiment_id: int) -> Experiment:
    """The client's AI experiment, or 404 (also for a Core experiment)."""
    experiment = experiment_for_client(session, client_id, experiment_id)
    if not experiment.runs_only:
        raise not_found(f"Experiment {experiment_id} is not an AI experiment")
    return experiment


def create_ai_experiment(
    ctx: ServerContext, client_id: int, project: str, raw_body: Any
) -> dict[str, Any]:
    """Validate (Core rules, §2.1's differences) and store; nothing is stored on a 400."""
    body = json_object(raw_body, "body")
    core_body = core_experiment_body(body, set(ExperimentCreate.model_fields))
    _check_metrics(core_body)
    with ctx.store.read() as session:
        project_for_client(session, client_id, project)
    spec = _as_ai(lambda: validate_body(ExperimentCreate, core_body))
    created = _as_ai(lambda: core.create_experiment(ctx, client_id, spec, project=project))
    return fetch_ai_experiment(ctx, client_id, int(created["id"]))


def fetch_ai_experiment(ctx: ServerContext, client_id: int, experiment_id: int) -> dict[str, Any]:
    """One AI experiment with its run progress."""
    with ctx.store.read() as session:
        row = ai_experiment_row(session, client_id, experiment_id)
        return ai_experiment_json(row, run_counts(session, [row.id])[row.id])


def list_ai_experiments(
    ctx: ServerContext,
    client_id: int,
    req: PageRequest,
    *,
    project: str | None,
    state: str | None,
) -> dict[str, Any]:
    """The client's AI experiments (of ``project`` when given), newest first; ``state``
    active (default), deleted or all."""
    if state not in (None, "active", "deleted", "all"):
        raise bad_request(
            f"Invalid value for state: {short_json(state)} - expected active, deleted or all"
        )
    with ctx.store.read() as session:
        conditions = [Experiment.client_id == client_id, Experiment.runs_only.is_(True)]
        if project is not None:
            project_for_client(session, client_id, project)
            conditions.append(Experiment.project == project)
        if state != "all":
            conditions.append(Experiment.state == (state or "active"))
        page = page_of(session, Experiment, conditions, req)
        counts = run_counts(session, [e.id for e in page.rows])
        return pagination_json(page, [ai_experiment_json(e, counts[e.id]) for e in page.rows])


def update_ai_experiment(
    ctx: ServerContext, client_id: int, experiment_id: int, raw_body: Any
) -> dict[str, Any]:
    """A Core experiment update in AI terms (``budget``; ``state: active`` unarchives)."""
    body = json_object(raw_body, "body")
    core_body = core_experiment_body(body, set(ExperimentUpdate.model_fields))
    fetch_ai_experiment(ctx, client_id, experiment_id)  # 404 unless an AI experiment
    spec = _as_ai(lambda: validate_body(ExperimentUpdate, core_body))
    _as_ai(lambda: core.update_experiment(ctx, client_id, experiment_id, spec))
    return fetch_ai_experiment(ctx, client_id, experiment_id)


def archive_ai_experiment(
    ctx: ServerContext, client_id: int, experiment_id: int, *, include_runs: bool
) -> None:
    """Archive (state ``deleted``); ``include_runs`` archives its runs too."""
    fetch_ai_experiment(ctx, client_id, experiment_id)
    core.delete_experiment(ctx, client_id, experiment_id)
    if include_runs:
        with ctx.store.write() as session:
            delete_experiment_runs(session, experiment_id, ctx.now())
