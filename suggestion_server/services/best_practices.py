"""GET /v1/experiments/{id}/best_practices (§1 #20): what in the experiment's set-up or state
works against the optimization, as ``{"object": "best_practices", "violations": [text]}``."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from suggestion_server.services.context import ServerContext
from suggestion_server.storage.models import Observation, Suggestion
from suggestion_server.storage.queries import experiment_row_for_client

# Below this many observations per parameter, TPE has little to model (Optuna's own default
# start-up is 10 random trials before it models anything).
OBSERVATIONS_PER_PARAMETER = 10
# With at least this many observations, a failure rate above FAILED_SHARE is reported.
FAILED_MIN_OBSERVATIONS = 10
FAILED_SHARE = 0.5


def best_practices(ctx: ServerContext, client_id: int, experiment_id: int) -> dict[str, Any]:
    """The violations, most actionable first; an empty list when there is nothing to say."""
    with ctx.store.read() as session:
        experiment = experiment_row_for_client(session, client_id, experiment_id)
        open_count = session.scalar(
            select(func.count()).where(
                Suggestion.experiment_id == experiment_id,
                Suggestion.deleted.is_(False),
                Suggestion.closed.is_(False),
            )
        )
        observed, failed = session.execute(
            select(func.count(), func.count().filter(Observation.failed.is_(True))).where(
                Observation.experiment_id == experiment_id, Observation.deleted.is_(False)
            )
        ).one()
    dimensions = len(json.loads(experiment.parameters_json))
    return {
        "object": "best_practices",
        "violations": violations(
            budget=experiment.observation_budget,
            bandwidth=experiment.parallel_bandwidth,
            dimensions=dimensions,
            open_count=int(open_count or 0),
            observed=int(observed or 0),
            failed=int(failed or 0),
        ),
    }


def violations(
    *,
    budget: int | None,
    bandwidth: int | None,
    dimensions: int,
    open_count: int,
    observed: int,
    failed: int,
) -> list[str]:
    """The checks, as plain data in and messages out."""
    found = []
    if bandwidth is not None and open_count > bandwidth:
        # The open-source server's wording (sigopt-v1-wire.md, parallel_bandwidth).
        found.append(
            f"number of open suggestions ({open_count}) exceeds parallel_bandwidth ({bandwidth})"
            " - open suggestions of workers that died stay open until adopted or deleted"
        )
    if bandwidth is None and open_count > 1:
        found.append(
            f"parallel_bandwidth is not set but {open_count} suggestions are open - set it to "
            "the number of workers"
        )
    if observed >= FAILED_MIN_OBSERVATIONS and failed > FAILED_SHARE * observed:
        found.append(
            f"{failed} of {observed} observations failed - their metadata.failure_reason says "
            "why; the optimizer steers away from failing regions but learns little from them"
        )
    if budget is None:
        found.append("observation_budget is not set - workers stop at the budget")
    elif budget < OBSERVATIONS_PER_PARAMETER * dimensions:
        found.append(
            f"observation_budget ({budget}) is below {OBSERVATIONS_PER_PARAMETER} per parameter "
            f"({OBSERVATIONS_PER_PARAMETER * dimensions} for {dimensions} parameters)"
        )
    return found
