"""The observation an AI-experiment run makes when it ends (sigopt-runs-wire.md §2.7): exactly
one per run, through the observation service, so the optimizer, the suggestion pool and the
suggestion's closing see it like any Core observation."""

from __future__ import annotations

import json
from typing import Any

from suggestion_server.services.context import ServerContext
from suggestion_server.services.observations import create_run_observation
from suggestion_server.storage.models import TrainingRun
from suggestion_server.wire.runs import ENDED_STATES
from suggestion_server.wire.schemas import ObservationCreate, ValueIn


def observation_body(run: TrainingRun, metrics: list[dict[str, Any]]) -> ObservationCreate:
    """Failed for a failed run, or when a completed run lacks a value of some experiment
    metric; otherwise every metric's value (and stddev) from the run's ``values``. Either way
    with the run's metadata (optfleet's agent stamps who evaluated it there)."""
    values = json.loads(run.values_json)
    metadata = json.loads(run.metadata_json) if run.metadata_json else None
    if run.state == "failed" or any(m["name"] not in values for m in metrics):
        return ObservationCreate(suggestion=run.suggestion_id, failed=True, metadata=metadata)
    return ObservationCreate(
        suggestion=run.suggestion_id,
        metadata=metadata,
        values=[
            ValueIn(
                name=m["name"],
                value=float(values[m["name"]]["value"]),
                value_stddev=values[m["name"]].get("value_stddev"),
            )
            for m in metrics
        ],
    )


def observe_if_ended(ctx: ServerContext, session: Any, experiment: Any, run: TrainingRun) -> None:
    """Make the run's observation if it has ended and has none yet (its state and values stay
    as they are). The caller's transaction holds the experiment's lock, then the run's: two
    endings of one run are serialized, and the second finds ``observation_id`` set. Runs of an
    archived experiment end without one (the observation service refuses deleted
    experiments)."""
    if (
        run.state not in ENDED_STATES
        or run.observation_id is not None
        or run.suggestion_id is None
        or experiment.state == "deleted"
    ):
        return
    body = observation_body(run, json.loads(experiment.metrics_json))
    run.observation_id = create_run_observation(ctx, session, experiment, body)
