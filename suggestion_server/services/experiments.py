"""Experiments: create, fetch (with progress), update, delete, list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from suggestion_server.domain.conditionals import (
    check_constraints_on_unconditioned,
    conditionals_of,
    validated_conditionals,
)
from suggestion_server.domain.experiment_space import (
    StoredParameter,
    _category_names,
    check_positive_int,
    check_prior_within,
    check_searchable,
    check_unsupported_features,
    linear_constraints_of,
    optimized_metrics,
    search_spec,
    validated_linear_constraints,
    validated_metrics,
    validated_parameters,
)
from suggestion_server.domain.training_monitor import validated_training_monitor
from suggestion_server.pool.entries import drop_pool
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import experiment_json, pagination_json
from suggestion_server.storage.models import Experiment, Observation, Suggestion
from suggestion_server.storage.queries import (
    ProgressRows,
    dumps,
    experiment_for_client,
    live_observations,
    page_of,
)
from suggestion_server.wire.ai_experiments import moved_to_ai_experiment
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.schemas import ExperimentCreate, ExperimentUpdate, ParameterIn


def single_objective(experiment: Experiment) -> str | None:
    """``maximize``/``minimize`` when the experiment has one optimized metric, else None."""
    opt = optimized_metrics(json.loads(experiment.metrics_json))
    return str(opt[0]["objective"]) if len(opt) == 1 else None


def constraint_metrics_of(experiment: Experiment) -> list[dict[str, Any]]:
    """The experiment's metrics with strategy ``constraint``."""
    return [m for m in json.loads(experiment.metrics_json) if m["strategy"] == "constraint"]


def is_feasible(observation: Observation, constraints: list[dict[str, Any]]) -> bool:
    """Whether a non-failed observation meets every constraint metric's threshold."""
    values = {v["name"]: v["value"] for v in json.loads(observation.values_json)}
    for metric in constraints:
        value = values.get(metric["name"])
        if value is None:
            return False
        if metric["objective"] == "maximize" and value < metric["threshold"]:
            return False
        if metric["objective"] == "minimize" and value > metric["threshold"]:
            return False
    return True


def _best_feasible(session: Session, experiment: Experiment) -> Observation | None:
    """The best observation among those meeting every constraint metric (oldest on ties).

    A scan of the experiment's observations: only experiments with constraint metrics pay it.
    """
    constraints = constraint_metrics_of(experiment)
    maximize = single_objective(experiment) == "maximize"
    best: Observation | None = None
    for row in live_observations(session, experiment.id):
        if row.failed or row.objective_value is None or not is_feasible(row, constraints):
            continue
        if (
            best is None
            or best.objective_value is None
            or (
                (row.objective_value > best.objective_value)
                if maximize
                else (row.objective_value < best.objective_value)
            )
        ):
            best = row
    return best


def progress_for(session: Session, experiments: Sequence[Experiment]) -> dict[int, ProgressRows]:
    """Progress of several experiments with a fixed number of aggregate queries."""
    ids = [e.id for e in experiments]
    if not ids:
        return {}
    live = (
        Observation.experiment_id.in_(ids),
        Observation.deleted.is_(False),
    )
    stats = {
        eid: (count, lo, hi)
        for eid, count, lo, hi in session.execute(
            select(
                Observation.experiment_id,
                func.count(),
                func.min(Observation.id),
                func.max(Observation.id),
            )
            .where(*live)
            .group_by(Observation.experiment_id)
        ).all()
    }
    open_counts = dict(
        session.execute(
            select(Suggestion.experiment_id, func.count())
            .where(
                Suggestion.experiment_id.in_(ids),
                Suggestion.deleted.is_(False),
                Suggestion.closed.is_(False),
            )
            .group_by(Suggestion.experiment_id)
        ).all()
    )
    objectives = {e.id: single_objective(e) for e in experiments}
    extremes = session.execute(
        select(
            Observation.experiment_id,
            func.max(Observation.objective_value),
            func.min(Observation.objective_value),
        )
        .where(*live, Observation.failed.is_(False), Observation.objective_value.is_not(None))
        .group_by(Observation.experiment_id)
    ).all()
    best_keys = [
        (eid, hi if objectives.get(eid) == "maximize" else lo)
        for eid, hi, lo in extremes
        if objectives.get(eid) is not None
    ]
    wanted_ids = {i for _, lo, hi in stats.values() for i in (lo, hi)}
    rows: dict[int, Observation] = {}
    if wanted_ids:
        rows.update(
            (o.id, o)
            for o in session.scalars(select(Observation).where(Observation.id.in_(wanted_ids)))
        )
    best: dict[int, Observation] = {}
    if best_keys:
        candidates = session.scalars(
            select(Observation)
            .where(
                *live,
                Observation.failed.is_(False),
                tuple_(Observation.experiment_id, Observation.objective_value).in_(best_keys),
            )
            .order_by(Observation.id.desc())
        )
        for o in candidates:
            best[o.experiment_id] = o  # descending ids: the oldest one wins
    for experiment in experiments:
        if objectives.get(experiment.id) is not None and constraint_metrics_of(experiment):
            found = _best_feasible(session, experiment)
            if found is None:
                best.pop(experiment.id, None)
            else:
                best[experiment.id] = found
    result = {}
    for eid in ids:
        count, lo, hi = stats.get(eid, (0, None, None))
        result[eid] = ProgressRows(
            observation_count=count,
            open_suggestion_count=open_counts.get(eid, 0),
            first=rows.get(lo) if lo is not None else None,
            last=rows.get(hi) if hi is not None else None,
            best=best.get(eid),
        )
    return result


def create_experiment(
    ctx: ServerContext, client_id: int, body: ExperimentCreate, *, project: str | None = None
) -> dict[str, Any]:
    """Validate and store a new experiment; with ``project``, an AI experiment of that project
    (``runs_only``: services/ai_experiments.py)."""
    check_unsupported_features(body)
    kind = body.type or "offline"
    params = validated_parameters(body.parameters, kind)
    conditionals = validated_conditionals(body, params, kind)
    metrics = validated_metrics(body.metrics)
    check_positive_int(body.observation_budget, "observation_budget")
    check_positive_int(body.parallel_bandwidth, "parallel_bandwidth")
    linear = validated_linear_constraints(body.linear_constraints, params)
    check_constraints_on_unconditioned(linear, params)
    check_searchable(search_spec(0, kind, params, metrics, linear, conditionals))
    if len(optimized_metrics(metrics)) > 1 and body.observation_budget is None:
        raise bad_request("observation_budget is required for experiments with 2 optimized metrics")
    monitor = (
        None
        if body.training_monitor is None
        else validated_training_monitor(body.training_monitor, metrics)
    )
    now = ctx.now()
    with ctx.store.write() as session:
        experiment = Experiment(
            client_id=client_id,
            name=body.name,
            type=kind,
            state="active",
            created=now,
            updated=now,
            metadata_json=dumps(body.metadata),
            parameters_json=dumps(params),
            metrics_json=dumps(metrics),
            linear_constraints_json=dumps(linear) if linear else None,
            conditionals_json=dumps(conditionals) if conditionals else None,
            training_monitor_json=dumps(monitor),
            observation_budget=body.observation_budget,
            parallel_bandwidth=body.parallel_bandwidth,
            version=0,
            project=project,
            runs_only=project is not None,
        )
        session.add(experiment)
        session.flush()
        progress = ProgressRows(0, 0, None, None, None)
        return experiment_json(experiment, progress)


def fetch_experiment(ctx: ServerContext, client_id: int, experiment_id: int) -> dict[str, Any]:
    """One experiment with its progress."""
    with ctx.store.read() as session:
        experiment = experiment_for_client(session, client_id, experiment_id)
        if experiment.runs_only:
            raise moved_to_ai_experiment(experiment.id)
        return experiment_json(experiment, progress_for(session, [experiment])[experiment.id])


def list_experiments(
    ctx: ServerContext, client_id: int, req: PageRequest, state: str | None
) -> dict[str, Any]:
    """The client's experiments, newest first; ``state`` active (default), deleted or all."""
    if state not in (None, "active", "deleted", "all"):
        raise bad_request(
            f"Unrecognized state {state} (if provided, must be active, deleted or all)"
        )
    conditions = [Experiment.client_id == client_id]
    if state in (None, "active", "deleted"):
        conditions.append(Experiment.state == (state or "active"))
    with ctx.store.read() as session:
        page = page_of(session, Experiment, conditions, req)
        progress = progress_for(session, page.rows)
        return pagination_json(page, [experiment_json(e, progress[e.id]) for e in page.rows])


def _updated_parameters(stored: list[StoredParameter], changes: list[Any]) -> list[StoredParameter]:
    by_name = {p["name"]: dict(p) for p in stored}
    for change in changes:
        current = by_name.get(change.name)
        where = f"parameter {change.name}"
        if current is None:
            raise bad_request(f"Unknown parameter in update: {change.name}")
        if "conditions" in change.model_fields_set and change.conditions != (
            current.get("conditions") or {}
        ):
            raise bad_request("Conditions cannot be updated for parameters")
        if change.type is not None and change.type != current["type"]:
            raise bad_request(f"The type of {where} cannot change ({current['type']})")
        if current["type"] == "categorical":
            if change.bounds is not None:
                raise bad_request(f"Categorical {where} must not have bounds")
            if change.categorical_values is not None:
                names = _category_names(change.categorical_values, where)
                if len(names) < 2:
                    raise bad_request(f"Categorical {where} needs at least 2 categorical_values")
                kept = [c for c in current["categories"] if c in names]
                current["categories"] = kept + [n for n in names if n not in kept]
        else:
            if change.categorical_values is not None:
                raise bad_request(f"{current['type'].capitalize()} {where} has no categories")
            if change.bounds is not None:
                probe = ParameterIn(
                    name=change.name,
                    type=current["type"],
                    bounds={"min": change.bounds.min, "max": change.bounds.max},  # type: ignore[arg-type]
                    transformation="log" if current.get("log") else None,
                )
                checked = validated_parameters([probe], "offline")[0]
                check_prior_within(current, checked["min"], checked["max"])
                current["min"], current["max"] = checked["min"], checked["max"]
        by_name[change.name] = current
    return [by_name[p["name"]] for p in stored]


def _conditionals_changed(given: Any, experiment: Experiment) -> bool:
    """Whether an update's ``conditionals`` differ from the stored ones (a fetched experiment
    posted back echoes them; SigOpt refuses any change)."""
    if not isinstance(given, list):
        return True
    stored = [(c["name"], c["values"]) for c in conditionals_of(experiment)]
    echoed = [
        (c.get("name"), c.get("values")) if isinstance(c, dict) else (None, None) for c in given
    ]
    return echoed != stored


def update_experiment(
    ctx: ServerContext, client_id: int, experiment_id: int, body: ExperimentUpdate
) -> dict[str, Any]:
    """Apply a partial update; changed parameters bump the engine's version."""
    fields = body.model_fields_set
    with ctx.store.write() as session:
        experiment = experiment_for_client(session, client_id, experiment_id, lock=True)
        if "conditionals" in fields and _conditionals_changed(body.conditionals, experiment):
            raise bad_request("Conditionals cannot be updated for an experiment")
        if "name" in fields:
            if body.name is None:
                raise bad_request("Invalid value for name: null - expected a string")
            experiment.name = body.name
        if "metadata" in fields:
            experiment.metadata_json = dumps(body.metadata)
        metrics = json.loads(experiment.metrics_json)
        if "observation_budget" in fields:
            check_positive_int(body.observation_budget, "observation_budget")
            if body.observation_budget is None and len(optimized_metrics(metrics)) > 1:
                raise bad_request("observation_budget is required for experiments with 2 metrics")
            experiment.observation_budget = body.observation_budget
        if "parallel_bandwidth" in fields:
            check_positive_int(body.parallel_bandwidth, "parallel_bandwidth")
            experiment.parallel_bandwidth = body.parallel_bandwidth
        if body.metrics:
            by_name = {m["name"]: m for m in metrics}
            for change in body.metrics:
                if change.name not in by_name:
                    raise bad_request(f"Unknown metric in update: {change.name}")
                if "threshold" in change.model_fields_set:
                    by_name[change.name]["threshold"] = change.threshold
            experiment.metrics_json = dumps(metrics) or "[]"
        if "training_monitor" in fields:
            # Applies to checkpoints posted from now on; values recorded at rungs stay.
            experiment.training_monitor_json = dumps(
                None
                if body.training_monitor is None
                else validated_training_monitor(body.training_monitor, metrics)
            )
        if body.parameters:
            stored = json.loads(experiment.parameters_json)
            updated = _updated_parameters(stored, body.parameters)
            if updated != stored:
                spec = search_spec(
                    experiment.id,
                    experiment.type,
                    updated,
                    metrics,
                    linear_constraints_of(experiment),
                    conditionals_of(experiment),
                )
                check_searchable(spec)
                experiment.parameters_json = dumps(updated) or "[]"
                experiment.version += 1
        if body.state is not None:
            experiment.state = body.state
        experiment.updated = ctx.now()
        session.flush()
        result = experiment_json(experiment, progress_for(session, [experiment])[experiment.id])
    if body.state == "deleted" or body.parameters:
        ctx.pool.forget(experiment_id)
    return result


def delete_experiment(ctx: ServerContext, client_id: int, experiment_id: int) -> None:
    """Soft delete: the experiment then reads ``state: "deleted"``."""
    with ctx.store.write() as session:
        experiment = experiment_for_client(session, client_id, experiment_id, lock=True)
        experiment.state = "deleted"
        experiment.updated = ctx.now()
        drop_pool(session, experiment_id)
    ctx.pool.forget(experiment_id)
