"""``best_training_runs`` of an AI experiment (sigopt-runs-wire.md §2.8): the runs whose
observation is among the best observations, as ``best_assignments`` chooses them."""

from __future__ import annotations

from typing import Any

from suggestion_server.services.ai_experiments import ai_experiment_row
from suggestion_server.services.best_assignments import best_observations
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import pagination_json
from suggestion_server.services.run_render import run_json
from suggestion_server.storage.models import TrainingRun
from suggestion_server.storage.queries import page_of
from suggestion_server.storage.runs import best_runs_conditions
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.paging import PageRequest

SORTS = (None, "created", "updated")


def best_training_runs(
    ctx: ServerContext, client_id: int, experiment_id: int, req: PageRequest, sort: str | None
) -> dict[str, Any]:
    """A page of the best runs, newest first: one metric, the run of the best feasible
    non-failed observation; two, the runs of the Pareto front. ``sort`` is accepted for the
    client's sake; the order is always newest first by id."""
    if sort not in SORTS:
        raise bad_request(
            f"Invalid value for sort: {short_json(sort)} - expected created or updated"
        )
    with ctx.store.read() as session:
        experiment = ai_experiment_row(session, client_id, experiment_id)
        best = [o.id for o in best_observations(session, experiment)]
        page = page_of(session, TrainingRun, best_runs_conditions(experiment.id, best), req)
        return pagination_json(page, [run_json(r) for r in page.rows])
