"""An experiment's conditionals: validated from the wire, stored, and applied to assignments.

A conditional is a named choice among string values (``model: svm | forest``); a parameter's
``conditions`` name the values under which it is active. Assignments hold every conditional and
only the active parameters (docs/api.md, "Conditionals"). The 400s use the open-source SigOpt
server's wording where one exists.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.schemas import ConditionalIn, ExperimentCreate, ParameterIn

# A conditional's values are names like categories.
MAX_VALUE_LENGTH = 50

StoredConditional = dict[str, Any]  # {"name": str, "values": [str, ...]}


def _checked_conditional(conditional: ConditionalIn) -> StoredConditional:
    name = conditional.name
    values: list[str] = []
    for value in conditional.values:
        if not 1 <= len(value) <= MAX_VALUE_LENGTH:
            raise bad_request(
                f"Invalid value for conditional {name}: {short_json(value)} - expected a string "
                f"of 1 to {MAX_VALUE_LENGTH} characters"
            )
        if value in values:
            raise bad_request(f"Duplicate conditional value {value} for conditional named {name}")
        values.append(value)
    if len(values) < 2:
        raise bad_request(f"Conditional {name} must have at least 2 values")
    return {"name": name, "values": values}


def _conditions_of(param: ParameterIn, by_name: Mapping[str, StoredConditional]) -> dict[str, Any]:
    """A parameter's conditions as stored: conditional name -> its values (always a list)."""
    conditions: dict[str, list[str]] = {}
    for name, given in (param.conditions or {}).items():
        conditional = by_name.get(name)
        if conditional is None:
            raise bad_request(
                f"Parameter {param.name} attempted to use non-existent conditional {name}"
            )
        values = [given] if isinstance(given, str) else list(given)
        if not values:
            raise bad_request(
                f"When providing condition for {name} on parameter {param.name}, must provide at "
                "least one value"
            )
        for value in values:
            if value not in conditional["values"]:
                raise bad_request(
                    f"Conditional {name} on parameter {param.name} attempted to use non-existent "
                    f"value {value}"
                )
        conditions[name] = list(dict.fromkeys(values))
    return conditions


def validated_conditionals(
    body: ExperimentCreate, params: list[dict[str, Any]], kind: str
) -> list[StoredConditional]:
    """The conditionals to store (``[]`` for none); each stored parameter gains its
    ``conditions`` (when it has any). A 400 naming the problem otherwise."""
    stored: list[StoredConditional] = []
    for conditional in body.conditionals or []:
        checked = _checked_conditional(conditional)
        if any(c["name"] == checked["name"] for c in stored):
            raise bad_request(f"Duplicate conditional name {checked['name']}")
        stored.append(checked)
    by_name = {c["name"]: c for c in stored}
    for param in params:
        if param["name"] in by_name:
            raise bad_request(f"Cannot have parameter and conditional both named {param['name']}")
    for given, param in zip(body.parameters, params):
        conditions = _conditions_of(given, by_name)
        if conditions:
            param["conditions"] = conditions
    if not stored:
        return stored
    if kind == "grid":
        raise bad_request(
            "Grid search experiments do not support conditional parameters currently."
        )
    if body.num_solutions is not None and body.num_solutions > 1:
        raise bad_request("Conditional experiments cannot be run with multisolution experiments")
    _check_every_combination_has_a_parameter(params, stored)
    return stored


def _check_every_combination_has_a_parameter(
    params: list[dict[str, Any]], conditionals: list[StoredConditional]
) -> None:
    combinations = itertools.product(*(c["values"] for c in conditionals))
    for combination in combinations:
        chosen = {c["name"]: value for c, value in zip(conditionals, combination)}
        if not any(is_active(p, chosen) for p in params):
            raise bad_request("Need at least one parameter that satisfies each conditional value")


def check_constraints_on_unconditioned(
    constraints: list[dict[str, Any]], params: list[dict[str, Any]]
) -> None:
    """A 400 when a linear constraint names a conditioned parameter (it may be absent)."""
    conditioned = {p["name"] for p in params if p.get("conditions")}
    for constraint in constraints:
        for term in constraint["terms"]:
            if term["name"] in conditioned:
                raise bad_request(
                    f"Constraint cannot be defined on a conditioned parameter {term['name']}"
                )


def conditionals_of(experiment: Any) -> list[StoredConditional]:
    """An experiment row's stored conditionals (none: an empty list)."""
    text = getattr(experiment, "conditionals_json", None)
    return list(json.loads(text)) if text else []


def is_active(param: Mapping[str, Any], chosen: Mapping[str, Any]) -> bool:
    """Whether a stored parameter is active under the conditionals' values ``chosen``."""
    conditions = param.get("conditions") or {}
    return all(chosen.get(name) in values for name, values in conditions.items())


def checked_choice(value: Any, choices: list[str], label: str) -> str:
    """``value`` if it is one of the string ``choices`` (a category, a conditional's value),
    else a 400 naming ``label``."""
    if not isinstance(value, str):
        raise bad_request(f"Invalid type for {label}: {short_json(value)} - expected type string")
    if value not in choices:
        raise bad_request(
            f"Invalid value for {label}: {short_json(value)} - expected one of "
            f"{short_json(choices)}"
        )
    return value


def chosen_and_active(
    assignments: Mapping[str, Any],
    params: list[dict[str, Any]],
    conditionals: list[StoredConditional],
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(each conditional's value, the parameters active under them) of user-given
    ``assignments``; a 400 (SigOpt's wording) for a missing or invalid conditional, an inactive
    parameter given, or an active one missing."""
    chosen: dict[str, str] = {}
    for conditional in conditionals:
        name = conditional["name"]
        if name not in assignments:
            raise bad_request(f'Missing assignment for conditional: "{name}"')
        chosen[name] = checked_choice(
            assignments[name], conditional["values"], f"conditional {name}"
        )
    active = []
    for param in params:
        name = param["name"]
        if is_active(param, chosen):
            if name not in assignments:
                raise bad_request(f'Missing assignment for parameter: "{name}"')
            active.append(param)
        elif name in assignments:
            raise bad_request(f'Do not provide assignment for unsatisfied parameter: "{name}"')
    return chosen, active
