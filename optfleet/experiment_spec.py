"""Read and validate an experiment file (YAML or JSON) into a SigOpt-v1 experiment create body.

Every problem is reported with the path of the field (``parameters[2].bounds.min``), the value
found and what was expected, all at once, before anything is sent to the API. The rules are the
SigOpt v1 API's for experiment creation (docs/api.md). ``budget`` is accepted as a friendly
alias of ``observation_budget``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from worker_bootstrap.cost.keys import MAX_COST_USD

EXPERIMENT_KEYS = {
    "name",
    "type",
    "parameters",
    "metrics",
    "observation_budget",
    "budget",
    "parallel_bandwidth",
    "metadata",
    "project",
    "conditionals",
    "linear_constraints",
    "num_solutions",
    "tasks",
    "training_monitor",
    MAX_COST_USD,
}
PARAMETER_KEYS = {
    "name",
    "type",
    "bounds",
    "categorical_values",
    "transformation",
    "prior",
    "grid",
    "default_value",
    "precision",
    "conditions",
}
METRIC_KEYS = {"name", "objective", "strategy", "threshold"}
EXPERIMENT_TYPES = ("offline", "random", "grid")
PARAMETER_TYPES = ("double", "int", "categorical")


class SpecError(ValueError):
    """The experiment file is invalid; ``problems`` lists each one with its field path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: invalid experiment ({len(problems)} problem(s)):\n{lines}")


def load_spec_file(path: Path) -> dict[str, Any]:
    """Parse ``path`` (JSON when it ends in .json, YAML otherwise) and validate it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(
            str(path), [f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"]
        ) from exc
    return validate_spec(raw, source=str(path))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_unknown(obj: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    for key in obj:
        if key not in allowed:
            problems.append(f"{where}{key}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _validate_bounds(param: dict[str, Any], where: str, problems: list[str]) -> None:
    bounds = param.get("bounds")
    if not isinstance(bounds, dict):
        problems.append(f"{where}.bounds: expected {{min, max}}, got {bounds!r}")
        return
    check = _is_int if param.get("type") == "int" else _is_number
    expected = "an integer" if param.get("type") == "int" else "a finite number"
    ok = True
    for side in ("min", "max"):
        if not check(bounds.get(side)):
            problems.append(f"{where}.bounds.{side}: expected {expected}, got {bounds.get(side)!r}")
            ok = False
    _check_unknown(bounds, {"min", "max"}, f"{where}.bounds.", problems)
    if ok and not bounds["min"] < bounds["max"]:
        problems.append(
            f"{where}.bounds: min ({bounds['min']}) must be less than max ({bounds['max']})"
        )
    if ok and param.get("transformation") == "log" and bounds["min"] <= 0:
        problems.append(
            f"{where}.bounds.min: must be > 0 with transformation: log, got {bounds['min']}"
        )


def _validate_parameter(param: object, where: str, problems: list[str]) -> str | None:
    if not isinstance(param, dict):
        problems.append(f"{where}: expected a mapping with name and type, got {param!r}")
        return None
    _check_unknown(param, PARAMETER_KEYS, f"{where}.", problems)
    name = param.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: expected a non-empty string, got {name!r}")
        name = None
    kind = param.get("type")
    if kind not in PARAMETER_TYPES:
        problems.append(f"{where}.type: expected one of {', '.join(PARAMETER_TYPES)}, got {kind!r}")
    elif kind == "categorical":
        if "bounds" in param:
            problems.append(f"{where}.bounds: not allowed for a categorical parameter")
        values = param.get("categorical_values")
        names = (
            [v.get("name") if isinstance(v, dict) else v for v in values]
            if isinstance(values, list)
            else None
        )
        if names is None or len(names) < 2:
            problems.append(
                f"{where}.categorical_values: expected a list of at least 2 names, got {values!r}"
            )
        elif not all(isinstance(n, str) and 0 < len(n) <= 50 for n in names):
            problems.append(
                f"{where}.categorical_values: every value must be a string of 1-50 characters"
            )
        elif len(set(names)) != len(names):
            problems.append(f"{where}.categorical_values: values must be unique, got {names}")
    else:
        _validate_bounds(param, where, problems)
        transformation = param.get("transformation")
        if transformation not in (None, "none", "log"):
            problems.append(f"{where}.transformation: expected log, got {transformation!r}")
    return name


def _validate_metric(metric: object, where: str, problems: list[str]) -> None:
    if isinstance(metric, str):
        return
    if not isinstance(metric, dict):
        problems.append(
            f"{where}: expected a name or a mapping with name and objective, got {metric!r}"
        )
        return
    _check_unknown(metric, METRIC_KEYS, f"{where}.", problems)
    if not isinstance(metric.get("name"), str) or not metric["name"]:
        problems.append(f"{where}.name: expected a non-empty string, got {metric.get('name')!r}")
    if metric.get("objective", "maximize") not in ("maximize", "minimize"):
        problems.append(
            f"{where}.objective: expected maximize or minimize, got {metric['objective']!r}"
        )
    if metric.get("strategy", "optimize") not in ("optimize", "constraint", "store"):
        problems.append(
            f"{where}.strategy: expected optimize, constraint or store, got {metric['strategy']!r}"
        )
    if metric.get("threshold") is not None and not _is_number(metric["threshold"]):
        problems.append(f"{where}.threshold: expected a number, got {metric['threshold']!r}")


def _validate_metadata(metadata: object, problems: list[str]) -> None:
    if not isinstance(metadata, dict):
        problems.append(f"metadata: expected a mapping, got {metadata!r}")
        return
    if len(metadata) > 100:
        problems.append(f"metadata: at most 100 keys, got {len(metadata)}")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 100:
            problems.append(f"metadata.{key}: keys must be strings of at most 100 characters")
        elif value is not None and not (_is_number(value) or isinstance(value, str)):
            problems.append(f"metadata.{key}: expected a string or a number, got {value!r}")
        elif isinstance(value, str) and len(value) > 500:
            problems.append(
                f"metadata.{key}: strings are limited to 500 characters, got {len(value)}"
            )


def _validate_positive_int(spec: dict[str, Any], key: str, problems: list[str]) -> None:
    value = spec.get(key)
    if value is not None and not (_is_int(value) and value > 0):
        problems.append(f"{key}: expected a positive integer, got {value!r}")


def _move_cost_cap(spec: dict[str, Any], problems: list[str]) -> None:
    """``max_cost_usd`` travels in the experiment's metadata, so plain SigOpt servers keep it."""
    key = MAX_COST_USD  # the same name at the file's top level and in the metadata
    if key not in spec:
        return
    cap = spec.pop(key)
    if not (_is_number(cap) and cap > 0):
        problems.append(f"{key}: expected a positive number of US dollars, got {cap!r}")
        return
    given = spec.get("metadata")
    metadata: dict[str, Any] = given if isinstance(given, dict) else {}
    if key in metadata:
        problems.append(f"{key}: give it at the top level or in metadata, not both")
        return
    spec["metadata"] = {**metadata, key: cap}


def validate_spec(raw: object, source: str = "experiment") -> dict[str, Any]:
    """Return the experiment create body for ``raw``; raise :class:`SpecError` listing problems."""
    if not isinstance(raw, dict):
        raise SpecError(
            source, [f"expected a mapping of experiment fields, got {type(raw).__name__}"]
        )
    problems: list[str] = []
    spec = dict(raw)
    _check_unknown(spec, EXPERIMENT_KEYS, "", problems)
    if "budget" in spec:
        if "observation_budget" in spec:
            problems.append("budget: give either budget or observation_budget, not both")
        spec["observation_budget"] = spec.pop("budget")

    name = spec.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        problems.append(f"name: expected a string of 1-100 characters, got {name!r}")
    if spec.get("type", "offline") not in EXPERIMENT_TYPES:
        problems.append(
            f"type: expected one of {', '.join(EXPERIMENT_TYPES)}, got {spec['type']!r}"
        )

    parameters = spec.get("parameters")
    if not isinstance(parameters, list) or not parameters:
        problems.append(f"parameters: expected a non-empty list, got {parameters!r}")
    else:
        seen: set[str] = set()
        for index, param in enumerate(parameters):
            param_name = _validate_parameter(param, f"parameters[{index}]", problems)
            if param_name is not None and param_name in seen:
                problems.append(
                    f"parameters[{index}].name: duplicate parameter name {param_name!r}"
                )
            if param_name is not None:
                seen.add(param_name)

    metrics = spec.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not metrics:
            problems.append(f"metrics: expected a non-empty list, got {metrics!r}")
        else:
            for index, metric in enumerate(metrics):
                _validate_metric(metric, f"metrics[{index}]", problems)

    _validate_positive_int(spec, "observation_budget", problems)
    _validate_positive_int(spec, "parallel_bandwidth", problems)
    monitor = spec.get("training_monitor")
    if monitor is not None and not isinstance(monitor, dict):
        # Its fields are the server's to check (docs/api.md, "Training runs and early stopping").
        problems.append(f"training_monitor: expected a mapping, got {monitor!r}")
    if spec.get("metadata") is not None:
        _validate_metadata(spec["metadata"], problems)
    _move_cost_cap(spec, problems)

    if problems:
        raise SpecError(source, problems)
    return spec
