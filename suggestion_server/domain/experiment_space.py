"""An experiment's search space and metrics: validated from the wire, stored, and handed to the
suggestion engine as a ``SearchSpec``. Also checks assignments against the space."""

from __future__ import annotations

import json
import math
from typing import Any

from suggestion_server.domain.conditionals import (
    StoredConditional,
    checked_choice,
    chosen_and_active,
    is_active,
)
from suggestion_server.optimizer.api import (
    BetaPrior,
    ConditionalSpec,
    ConstraintMetric,
    LinearConstraint,
    NormalPrior,
    ParameterPrior,
    ParameterSpec,
    SearchSpec,
)
from suggestion_server.optimizer.linear_constraints import check_linear_constraints
from suggestion_server.optimizer.space import MAX_GRID_POINTS, validate_spec
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.schemas import (
    CategoricalValueIn,
    ExperimentCreate,
    LinearConstraintIn,
    MetricIn,
    ParameterIn,
    PriorIn,
)

MAX_PARAMETERS = 100
MAX_INT32 = 2**31 - 1
# Integer bounds must stay exactly representable as floats (they come back as floats).
MAX_INT_BOUND = 2**53
MAX_CATEGORY_LENGTH = 50
MAX_OPTIMIZED_METRICS = 2
MAX_CONSTRAINT_METRICS = 4
MAX_METRICS = 50

StoredParameter = dict[str, Any]
StoredMetric = dict[str, Any]
StoredLinearConstraint = dict[str, Any]


def _category_names(values: list[str | CategoricalValueIn], where: str) -> list[str]:
    names = [v if isinstance(v, str) else v.name for v in values]
    for name in names:
        if not 1 <= len(name) <= MAX_CATEGORY_LENGTH:
            raise bad_request(
                f"Invalid categorical value for {where}: {short_json(name)} - expected a "
                f"string of 1 to {MAX_CATEGORY_LENGTH} characters"
            )
    if len(set(names)) != len(names):
        raise bad_request(f"Duplicate categorical values for {where}: {short_json(names)}")
    return names


def _is_integral(value: float) -> bool:
    return float(value).is_integer()


PRIOR_NAMES = ("beta", "normal")


def _finite(value: float | None, field: str, where: str) -> float:
    if value is None:
        raise bad_request(f'Missing required json key "prior.{field}" for {where}')
    if not math.isfinite(value):
        raise bad_request(f"Invalid prior.{field} for {where}: {value} - expected a finite number")
    return float(value)


def validated_prior(prior: PriorIn, param: ParameterIn, low: float, high: float) -> dict[str, Any]:
    """A double's prior as stored (``{name, mean, scale}`` or ``{name, shape_a, shape_b}``), or
    a 400 naming the parameter. As on the open-source server: doubles only, not with a log
    transformation nor a grid; a normal's mean inside the bounds and its scale positive; a
    beta's shapes positive."""
    where = f"parameter {param.name}"
    if param.type != "double":
        raise bad_request(f"Invalid prior for {where}: only double parameters can have a prior")
    if param.transformation == "log":
        raise bad_request(
            f"Invalid prior for {where}: a parameter with a log transformation cannot have a prior"
        )
    if param.grid is not None:
        raise bad_request(f"Invalid prior for {where}: a grid parameter cannot have a prior")
    extra = {"normal": ("shape_a", "shape_b"), "beta": ("mean", "scale")}.get(prior.name, ())
    if prior.name not in PRIOR_NAMES:
        raise bad_request(
            f"Invalid prior type for {where}: {short_json(prior.name)} - expected one of "
            f"{short_json(list(PRIOR_NAMES))}"
        )
    given = [key for key in extra if getattr(prior, key) is not None]
    if given:
        raise bad_request(f"Invalid prior for {where}: a {prior.name} prior has no {given[0]}")
    if prior.name == "normal":
        mean, scale = _finite(prior.mean, "mean", where), _finite(prior.scale, "scale", where)
        if not low <= mean <= high:
            raise bad_request(
                f"Invalid prior.mean for {where}: {mean} - expected within the bounds "
                f"[{low}, {high}]"
            )
        if not scale > 0:
            raise bad_request(f"Invalid prior.scale for {where}: {scale} - expected > 0")
        return {"name": "normal", "mean": mean, "scale": scale}
    shape_a, shape_b = (
        _finite(prior.shape_a, "shape_a", where),
        _finite(prior.shape_b, "shape_b", where),
    )
    for label, shape in (("shape_a", shape_a), ("shape_b", shape_b)):
        if not shape > 0:
            raise bad_request(f"Invalid prior.{label} for {where}: {shape} - expected > 0")
    return {"name": "beta", "shape_a": shape_a, "shape_b": shape_b}


def check_prior_within(param: StoredParameter, low: float, high: float) -> None:
    """A 400 when new bounds would leave a parameter's normal prior's mean outside them."""
    prior = engine_prior(param.get("prior"))
    if isinstance(prior, NormalPrior) and not low <= prior.mean <= high:
        raise bad_request(
            f"Invalid bounds for parameter {param['name']}: its prior's mean {prior.mean} "
            f"must stay within [{low}, {high}]"
        )


def _validated_parameter(param: ParameterIn, kind: str) -> StoredParameter:
    where = f"parameter {param.name}"
    stored: StoredParameter = {
        "name": param.name,
        "type": param.type,
        "log": param.transformation == "log",
        "default_value": param.default_value,
        "prior": None,
        "precision": param.precision,
    }
    if param.prior is not None and param.type != "double":
        validated_prior(param.prior, param, 0.0, 0.0)  # the 400 naming the type
    if param.type == "categorical":
        if param.bounds is not None:
            raise bad_request(f"Categorical {where} must not have bounds")
        if stored["log"]:
            raise bad_request(f"Categorical {where} must not have a transformation")
        if not param.categorical_values or len(param.categorical_values) < 2:
            raise bad_request(
                f"Categorical {where} needs categorical_values: a list of at least 2 names"
            )
        stored["categories"] = _category_names(param.categorical_values, where)
        if param.grid is not None:
            grid = param.grid
            if any(g not in stored["categories"] for g in grid):
                raise bad_request(f"Grid of {where} must contain only its categorical values")
            stored["grid"] = list(dict.fromkeys(grid))
        return stored
    if param.categorical_values is not None:
        raise bad_request(f"{param.type.capitalize()} {where} must not have categorical_values")
    if param.bounds is None:
        raise bad_request(f'Missing required json key "bounds" for {where} ({param.type})')
    low, high = param.bounds.min, param.bounds.max
    if param.type == "int":
        for label, bound in (("min", low), ("max", high)):
            if not _is_integral(bound) or abs(bound) > MAX_INT_BOUND:
                raise bad_request(
                    f"Invalid type for {label}: {bound} - expected type integer ({where})"
                )
    if not low < high:
        raise bad_request(
            f"Invalid bounds for {where}: max ({high}) must be greater than min ({low})"
        )
    if stored["log"] and low <= 0:
        raise bad_request(
            f"Invalid bounds for {where}: a log transformation needs min > 0, got {low}"
        )
    if not math.isfinite(high - low):
        raise bad_request(f"Invalid bounds for {where}: max - min must be a finite number")
    if param.type == "double" and not (high - low) > 1e-10 * max(1.0, abs(low), abs(high)):
        raise bad_request(f"Invalid bounds for {where}: max - min is too small")
    stored["min"], stored["max"] = float(low), float(high)
    if param.prior is not None:
        stored["prior"] = validated_prior(param.prior, param, stored["min"], stored["max"])
    if param.grid is not None:
        grid_values: list[Any] = []
        for g in param.grid:
            if isinstance(g, str) or (param.type == "int" and not _is_integral(g)):
                raise bad_request(
                    f"Invalid grid value for {where}: {short_json(g)} - expected "
                    f"{'integer' if param.type == 'int' else 'number'}"
                )
            if not low <= g <= high:
                raise bad_request(f"Grid value {g} of {where} is outside its bounds")
            grid_values.append(int(g) if param.type == "int" else float(g))
        if not grid_values:
            raise bad_request(f"Grid of {where} must not be empty")
        stored["grid"] = list(dict.fromkeys(grid_values))
    elif kind == "grid" and param.type == "double":
        raise bad_request(f"Grid experiments need a grid of values for double {where}")
    return stored


def validated_parameters(params: list[ParameterIn], kind: str) -> list[StoredParameter]:
    """The parameters to store, or a 400 naming the first problem."""
    if not params:
        raise bad_request("An experiment needs at least one parameter")
    if len(params) > MAX_PARAMETERS:
        raise bad_request(f"Expected at most {MAX_PARAMETERS} parameters, got {len(params)}")
    names = [p.name for p in params]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad_request(f"Duplicate parameter names: {', '.join(duplicates)}")
    return [_validated_parameter(p, kind) for p in params]


def validated_metrics(metrics: list[str | MetricIn] | None) -> list[StoredMetric]:
    """The metrics to store (default: one unnamed maximized metric), or a 400."""
    if metrics is None or len(metrics) == 0:
        return [{"name": None, "objective": "maximize", "strategy": "optimize", "threshold": None}]
    stored = []
    for metric in metrics:
        m = MetricIn(name=metric) if isinstance(metric, str) else metric
        stored.append(
            {
                "name": m.name,
                "objective": m.objective or "maximize",
                "strategy": m.strategy or "optimize",
                "threshold": m.threshold,
            }
        )
    if len(stored) > MAX_METRICS:
        raise bad_request(f"Expected at most {MAX_METRICS} metrics, got {len(stored)}")
    names = [m["name"] for m in stored]
    if len(stored) > 1 and any(not n for n in names):
        raise bad_request("Every metric needs a name when an experiment has several metrics")
    if len(set(names)) != len(names):
        raise bad_request(f"Duplicate metric names: {short_json(names)}")
    optimized = sum(1 for m in stored if m["strategy"] == "optimize")
    if not 1 <= optimized <= MAX_OPTIMIZED_METRICS:
        raise bad_request(
            f"An experiment needs 1 or {MAX_OPTIMIZED_METRICS} metrics with strategy "
            f'"optimize", got {optimized}'
        )
    constraints = [m for m in stored if m["strategy"] == "constraint"]
    if len(constraints) > MAX_CONSTRAINT_METRICS:
        raise bad_request(f"Expected at most {MAX_CONSTRAINT_METRICS} constraint metrics")
    for constraint in constraints:
        threshold = constraint["threshold"]
        if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise bad_request(
                f"Missing threshold for constraint metric {constraint['name']}: expected a "
                "finite number"
            )
    return stored


def validated_linear_constraints(
    constraints: list[LinearConstraintIn] | None, params: list[StoredParameter]
) -> list[StoredLinearConstraint]:
    """The linear constraints to store, or a 400 naming the constraint and what is wrong."""
    stored: list[StoredLinearConstraint] = []
    for index, c in enumerate(constraints or []):
        if not math.isfinite(c.threshold) or not all(math.isfinite(t.weight) for t in c.terms):
            raise bad_request(
                f"Invalid linear_constraints[{index}]: threshold and weights must be finite"
            )
        terms = [{"name": t.name, "weight": t.weight} for t in c.terms]
        stored.append({"type": c.type, "threshold": c.threshold, "terms": terms})
    return stored


def check_positive_int(value: int | None, field: str) -> None:
    """A 400 unless ``value`` is None or a positive 32-bit integer."""
    if value is not None and not 0 < value <= MAX_INT32:
        raise bad_request(f"Invalid value for {field}: {value} - expected a positive integer")


def check_unsupported_features(body: ExperimentCreate) -> None:
    """A 400 for the wire's features this server does not implement."""
    if body.tasks:
        raise bad_request("tasks are not supported by this server")
    if body.runs_only:
        raise bad_request("runs_only (AI) experiments are not supported by this server")
    if body.num_solutions not in (None, 1):
        if body.conditionals:  # the open-source server's answer to this pair
            raise bad_request(
                "Conditional experiments cannot be run with multisolution experiments"
            )
        raise bad_request("num_solutions other than 1 is not supported by this server")
    if body.development:
        raise bad_request("development experiments are not supported by this server")


def check_searchable(spec: SearchSpec) -> None:
    """A 400 unless the engine can search ``spec`` (its own checks, plus the grid's size)."""
    try:
        validate_spec(spec)
        check_linear_constraints(spec.parameters, spec.linear_constraints)
    except ValueError as exc:
        raise bad_request(f"Invalid experiment: {exc}") from None
    if spec.kind != "grid":
        return
    points = 1
    for p in spec.parameters:
        if p.grid:
            points *= len(p.grid)
        elif p.type == "int" and p.low is not None and p.high is not None:
            points *= int(p.high) - int(p.low) + 1
        else:
            points *= max(1, len(p.categories))
    if points > MAX_GRID_POINTS:
        raise bad_request(
            f"Invalid grid experiment: {points} grid points, at most {MAX_GRID_POINTS} supported"
        )


def linear_constraints_of(experiment: Any) -> list[StoredLinearConstraint]:
    """An experiment row's stored linear constraints (none: an empty list)."""
    text = experiment.linear_constraints_json
    return list(json.loads(text)) if text else []


def engine_metrics(metrics: list[StoredMetric]) -> list[StoredMetric]:
    """The metrics the engine reads from observations: optimized and constraint ones."""
    return [m for m in metrics if m["strategy"] in ("optimize", "constraint")]


def optimized_metrics(metrics: list[StoredMetric]) -> list[StoredMetric]:
    """The metrics with strategy ``optimize``, in the experiment's order."""
    return [m for m in metrics if m["strategy"] == "optimize"]


def metric_key(name: str | None) -> str:
    """The engine's name for a metric (the unnamed metric is ``""``)."""
    return name or ""


def engine_prior(stored: Any) -> ParameterPrior | None:
    """A stored prior as the engine takes it; None for none (or for a prior stored before
    priors were validated that is not one of the two kinds)."""
    if not isinstance(stored, dict):
        return None
    try:
        if stored.get("name") == "normal":
            return NormalPrior(float(stored["mean"]), float(stored["scale"]))
        if stored.get("name") == "beta":
            return BetaPrior(float(stored["shape_a"]), float(stored["shape_b"]))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def search_spec(
    experiment_id: int,
    kind: str,
    params: list[StoredParameter],
    metrics: list[StoredMetric],
    linear_constraints: list[StoredLinearConstraint] | None = None,
    conditionals: list[StoredConditional] | None = None,
) -> SearchSpec:
    """The engine's view of an experiment."""
    specs = []
    for p in sorted(params, key=lambda p: p["name"]):
        specs.append(
            ParameterSpec(
                name=p["name"],
                type=p["type"],
                low=p.get("min"),
                high=p.get("max"),
                log=bool(p.get("log")),
                categories=tuple(p.get("categories", ())),
                grid=tuple(p.get("grid", ())),
                conditions=tuple(
                    (name, tuple(values)) for name, values in (p.get("conditions") or {}).items()
                ),
                prior=engine_prior(p.get("prior")),
            )
        )
    opt = optimized_metrics(metrics)
    return SearchSpec(
        experiment_id=experiment_id,
        kind=kind,  # type: ignore[arg-type]
        parameters=tuple(specs),
        metric_names=tuple(metric_key(m["name"]) for m in opt),
        directions=tuple(m["objective"] for m in opt),
        constraint_metrics=tuple(
            ConstraintMetric(metric_key(m["name"]), m["objective"], float(m["threshold"]))
            for m in metrics
            if m["strategy"] == "constraint" and m["threshold"] is not None
        ),
        linear_constraints=tuple(
            LinearConstraint(
                c["type"],
                float(c["threshold"]),
                tuple((t["name"], float(t["weight"])) for t in c["terms"]),
            )
            for c in linear_constraints or []
        ),
        conditionals=tuple(
            ConditionalSpec(c["name"], tuple(c["values"])) for c in conditionals or []
        ),
    )


def validated_assignments(
    assignments: dict[str, Any],
    params: list[StoredParameter],
    conditionals: list[StoredConditional] | None = None,
) -> dict[str, float | int | str]:
    """``assignments`` checked against the space (all parameters, right types, in bounds),
    with values in their canonical type; a 400 naming the parameter otherwise. With
    ``conditionals``: every conditional and exactly the parameters active under them."""
    if conditionals:
        chosen, params = chosen_and_active(assignments, params, conditionals)
        rest = {name: value for name, value in assignments.items() if name not in chosen}
        merged: dict[str, float | int | str] = {**validated_assignments(rest, params), **chosen}
        return dict(sorted(merged.items()))
    by_name = {p["name"]: p for p in params}
    unknown = sorted(set(assignments) - set(by_name))
    if unknown:
        raise bad_request(f"Unknown parameters in assignments: {', '.join(unknown)}")
    missing = sorted(set(by_name) - set(assignments))
    if missing:
        raise bad_request(f"Missing assignments for parameters: {', '.join(missing)}")
    result: dict[str, float | int | str] = {}
    for name, p in sorted(by_name.items()):
        value = assignments[name]
        if p["type"] == "categorical":
            result[name] = checked_choice(value, p["categories"], name)
            continue
        if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
            raise bad_request(
                f"Invalid type for {name}: {short_json(value)} - expected type number"
            )
        if isinstance(value, int) and abs(value) > MAX_INT_BOUND:
            raise bad_request(
                f"Assignment {name}={short_json(value, 40)} is out of bounds: expected "
                f"{p['min']} <= {name} <= {p['max']}"
            )
        if p["type"] == "int":
            if not float(value).is_integer():
                raise bad_request(f"Invalid type for {name}: {value} - expected type integer")
            value = int(value)
        elif not math.isfinite(value):
            raise bad_request(f"Invalid value for {name}: {value} - expected a finite number")
        else:
            value = float(value)
        if not p["min"] <= value <= p["max"]:
            raise bad_request(
                f"Assignment {name}={value} is out of bounds: expected {p['min']} <= {name} "
                f"<= {p['max']}"
            )
        result[name] = value
    return result


def rendered_assignments(
    assignments: dict[str, Any], params: list[StoredParameter]
) -> dict[str, float | int | str]:
    """Stored assignments rendered by parameter type (float for double, int for int)."""
    types = {p["name"]: p["type"] for p in params}
    out: dict[str, float | int | str] = {}
    for name, value in assignments.items():
        kind = types.get(name)
        if kind == "double" and isinstance(value, (int, float)):
            out[name] = float(value)
        elif kind == "int" and isinstance(value, (int, float)):
            out[name] = int(value)
        else:
            out[name] = value
    return out


def engine_assignments(
    proposed: dict[str, Any],
    params: list[StoredParameter],
    conditionals: list[StoredConditional] | None = None,
) -> dict[str, float | int | str]:
    """An engine proposal as stored: the parameters (only the active ones, with conditionals)
    rendered by type, then the conditionals. ``RuntimeError`` if the engine left one out."""
    chosen = {c["name"]: proposed.get(c["name"]) for c in conditionals or []}
    wanted = [p for p in params if is_active(p, chosen)] if conditionals else params
    missing = sorted(
        {p["name"] for p in wanted} - set(proposed)
        | {name for name, value in chosen.items() if value is None}
    )
    if missing:
        raise RuntimeError(f"engine proposed no value for {missing}")
    rendered = rendered_assignments({p["name"]: proposed[p["name"]] for p in wanted}, params)
    rendered.update((name, str(value)) for name, value in chosen.items())
    return rendered
