"""The ``filters`` query parameter of run lists (sigopt-runs-wire.md §2.8): a JSON array of
``{"field", "operator", "value"}``, all of which must hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json

OPERATORS = ("==", "!=", ">=", ">", "<=", "<", "isnull")
# Field -> the type its value has: run ids and times are integers, the rest strings.
FIELDS: dict[str, str] = {
    "experiment": "id",
    "suggestion": "id",
    "observation": "id",
    "id": "id",
    "state": "string",
    "name": "string",
    "created": "integer",
    "updated": "integer",
    "completed": "integer",
}
MAX_FILTERS = 20


@dataclass(frozen=True)
class RunFilter:
    """One condition: ``field operator value`` (``isnull``: value is whether it is null)."""

    field: str
    operator: str
    value: int | str | bool


def _value(field: str, operator: str, value: Any, where: str) -> int | str | bool:
    if operator == "isnull":
        if value is None:
            return True
        if not isinstance(value, bool):
            raise bad_request(
                f"Invalid value for {where}.value: {short_json(value)} - expected a boolean"
            )
        return value
    kind = FIELDS[field]
    if kind == "string":
        if not isinstance(value, str):
            raise bad_request(
                f"Invalid value for {where}.value: {short_json(value)} - expected a string"
            )
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        expected = "an id" if kind == "id" else "an integer"
        raise bad_request(
            f"Invalid value for {where}.value: {short_json(value)} - expected {expected}"
        )
    return value


def parse_run_filters(text: str | None) -> list[RunFilter]:
    """The conditions of a ``filters`` query value (absent: none), or a 400 naming the entry."""
    if text is None:
        return []
    try:
        entries = json.loads(text)
    except ValueError:
        raise bad_request(
            f"Invalid value for filters: {short_json(text)} - expected a JSON array"
        ) from None
    if not isinstance(entries, list) or len(entries) > MAX_FILTERS:
        raise bad_request(
            f"Invalid value for filters: {short_json(text)} - expected a JSON array of at most "
            f"{MAX_FILTERS} objects"
        )
    result = []
    for index, entry in enumerate(entries):
        where = f"filters[{index}]"
        if (
            not isinstance(entry, dict)
            or not {"field", "operator"} <= set(entry)
            or not set(entry) <= {"field", "operator", "value"}
        ):
            raise bad_request(
                f"Invalid value for {where}: {short_json(entry)} - expected an object with "
                "field, operator and value"
            )
        field, operator = entry["field"], entry["operator"]
        if field not in FIELDS:
            raise bad_request(
                f"Invalid value for {where}.field: {short_json(field)} - expected one of "
                f"{', '.join(FIELDS)}"
            )
        if operator not in OPERATORS:
            raise bad_request(
                f"Invalid value for {where}.operator: {short_json(operator)} - expected one of "
                f"{' '.join(OPERATORS)}"
            )
        result.append(
            RunFilter(field, operator, _value(field, operator, entry.get("value"), where))
        )
    return result
