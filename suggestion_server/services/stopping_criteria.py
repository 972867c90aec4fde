"""``GET /experiments/{id}/stopping_criteria``: SigOpt's advice on whether to stop."""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import select

from suggestion_server.domain.experiment_space import optimized_metrics
from suggestion_server.domain.stopping_criteria import Values, stopping_reasons
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.models import Observation
from suggestion_server.storage.queries import experiment_for_client


def stopping_criteria(ctx: ServerContext, client_id: int, experiment_id: int) -> dict[str, Any]:
    """``{object: "stopping_criteria", should_stop, reasons}`` from the live observations, read
    in creation order: one column for one optimized metric, the values for two."""
    with ctx.store.read() as session:
        experiment = experiment_for_client(session, client_id, experiment_id)
        metrics = optimized_metrics(json.loads(experiment.metrics_json))
        signs = [1.0 if m["objective"] == "maximize" else -1.0 for m in metrics]
        live = (Observation.experiment_id == experiment.id, Observation.deleted.is_(False))
        values: list[Values] = []
        if len(metrics) == 1:
            rows = session.execute(
                select(Observation.failed, Observation.objective_value)
                .where(*live)
                .order_by(Observation.id)
            )
            for failed, value in rows:
                values.append((_maximized(failed, value, signs[0]),))
        else:
            names = [m["name"] for m in metrics]
            pairs = session.execute(
                select(Observation.failed, Observation.values_json)
                .where(*live)
                .order_by(Observation.id)
            )
            for failed, values_json in pairs:
                by_name = {v["name"]: v["value"] for v in json.loads(str(values_json))}
                values.append(
                    tuple(
                        _maximized(failed, by_name.get(name), sign)
                        for name, sign in zip(names, signs)
                    )
                )
        parameters = len(json.loads(experiment.parameters_json))
        reasons = stopping_reasons(values, parameters, experiment.observation_budget)
    return {"object": "stopping_criteria", "should_stop": bool(reasons), "reasons": reasons}


def _maximized(failed: bool, value: float | None, sign: float) -> float:
    """A value to maximize; a failed observation (or one without the value) is -inf."""
    if failed or value is None:
        return -math.inf
    return sign * float(value)
