"""best_assignments: the best observation (one optimized metric) or the Pareto front (two)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from suggestion_server.domain.experiment_space import optimized_metrics
from suggestion_server.services.context import ServerContext
from suggestion_server.services.experiments import (
    constraint_metrics_of,
    is_feasible,
    progress_for,
)
from suggestion_server.services.render import best_assignments_json
from suggestion_server.storage.models import Experiment, Observation
from suggestion_server.storage.queries import experiment_for_client, live_observations
from suggestion_server.wire.paging import PageRequest


def _pareto_front(rows: list[Observation], metrics: list[dict[str, Any]]) -> list[Observation]:
    """Observations no other observation dominates (two metrics; a sweep in O(n log n))."""
    signs = [1.0 if m["objective"] == "maximize" else -1.0 for m in metrics]
    names = [m["name"] for m in metrics]
    points: list[tuple[float, float, Observation]] = []
    for row in rows:
        by_name = {v["name"]: v["value"] for v in json.loads(row.values_json)}
        if all(n in by_name for n in names):
            points.append(
                (signs[0] * float(by_name[names[0]]), signs[1] * float(by_name[names[1]]), row)
            )
    points.sort(key=lambda p: (-p[0], -p[1]))
    front: list[Observation] = []
    best_second = float("-inf")  # best second value among points with a strictly larger first
    i = 0
    while i < len(points):
        j = i
        while j < len(points) and points[j][0] == points[i][0]:
            j += 1
        group_top = points[i][1]  # the group is sorted by second value, descending
        for _first, second, row in points[i:j]:
            if second == group_top and second > best_second:
                front.append(row)
        best_second = max(best_second, group_top)
        i = j
    return front


def best_observations(session: Session, experiment: Experiment) -> list[Observation]:
    """The best feasible non-failed observation (one optimized metric) or the Pareto front of
    the feasible ones (two)."""
    metrics = optimized_metrics(json.loads(experiment.metrics_json))
    if len(metrics) == 1:
        best = progress_for(session, [experiment])[experiment.id].best
        return [] if best is None else [best]
    constraints = constraint_metrics_of(experiment)
    feasible = [
        row for row in live_observations(session, experiment.id) if is_feasible(row, constraints)
    ]
    return _pareto_front(feasible, metrics)


def best_assignments(
    ctx: ServerContext, client_id: int, experiment_id: int, req: PageRequest
) -> dict[str, Any]:
    """A Pagination of best assignments, newest first (paging markers are not needed: the
    result is at most the Pareto front and is returned in one page up to ``limit``)."""
    with ctx.store.read() as session:
        experiment = experiment_for_client(session, client_id, experiment_id)
        rows = best_observations(session, experiment)
        rows.sort(key=lambda r: r.id, reverse=True)
        data = [best_assignments_json(r) for r in rows[: req.limit]]
        return {
            "object": "pagination",
            "count": len(rows),
            "data": data,
            "paging": {"before": None, "after": None},
        }
