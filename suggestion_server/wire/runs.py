"""Runs on the wire (sigopt-runs-wire.md §2.2-2.5, §3): the fields a SigOpt >= 8 client sets on
a run, their shapes, and MERGE (objects merge recursively, a null deletes) and PUT (each given
key replaced) applied to them.

A run's fields are kept as one plain dict (``RunFields``); services map it onto the row.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.metadata import validate_metadata
from suggestion_server.wire.projects import check_project_id

RunFields = dict[str, Any]

STATES = ("active", "completed", "failed")
ENDED_STATES = ("completed", "failed")
MAX_NAME_LENGTH = 100
MAX_KEY_LENGTH = 100
# The open-source server keeps this much of each log stream (the client already cuts to ~1 KiB).
MAX_LOG_CHARS = 1124

# Every key MERGE and PUT accept; create takes the same but ``deleted`` and ``project``.
UPDATE_KEYS = (
    "assignments",
    "assignments_meta",
    "assignments_sources",
    "datasets",
    "deleted",
    "dev_metadata",
    "favorite",
    "logs",
    "metadata",
    "model",
    "name",
    "project",
    "source_code",
    "state",
    "sys_metadata",
    "values",
)
CREATE_KEYS = tuple(key for key in UPDATE_KEYS if key not in ("deleted", "project"))
_NOT_NULL = ("name", "state", "project")
_BOOLEANS = ("deleted", "favorite")
_OBJECTS = tuple(k for k in UPDATE_KEYS if k not in (*_NOT_NULL, *_BOOLEANS))

# The value a key takes when a body sets it to null (or a new run leaves it out).
EMPTY_FIELDS: RunFields = {
    "assignments": {},
    "assignments_meta": {},
    "assignments_sources": {},
    "datasets": {},
    "deleted": False,
    "dev_metadata": {},
    "favorite": False,
    "logs": {},
    "metadata": None,
    "model": {},
    "source_code": {},
    "sys_metadata": {},
    "values": {},
}


def _checked_keys(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"Invalid type for body: {short_json(body)} - expected type object")
    unknown = [key for key in body if key not in allowed]
    if unknown:
        keys = ", ".join(f"`{key}`" for key in unknown)
        raise bad_request(
            f"Unknown json keys {keys} in: {short_json(body)} - expected some of "
            f"{', '.join(allowed)}"
        )
    for key in _NOT_NULL:
        if key in body and body[key] is None:
            raise bad_request(f"Invalid value for {key}: null - expected a string")
    for key in _BOOLEANS:
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise bad_request(
                f"Invalid type for {key}: {short_json(body[key])} - expected type boolean"
            )
    for key in _OBJECTS:
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise bad_request(
                f"Invalid type for {key}: {short_json(body[key])} - expected type object"
            )
    return body


def create_body(body: Any) -> dict[str, Any]:
    """A run create body, checked: known keys, ``name`` required (a string)."""
    checked = _checked_keys(body, CREATE_KEYS)
    if "name" not in checked:
        raise bad_request(f'Missing required json key "name" in: {short_json(body)}')
    return checked


def update_body(body: Any) -> dict[str, Any]:
    """A MERGE or PUT body, checked: known keys, no null ``name``/``state``/``project``."""
    return _checked_keys(body, UPDATE_KEYS)


def _merged(current: Any, patch: Any) -> Any:
    """``patch`` merged into ``current``: objects recursively, a null deletes its key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(result.get(key), value)
    return result


def applied(fields: RunFields, body: dict[str, Any], *, replace: bool) -> RunFields:
    """``fields`` after a checked body: MERGE (``replace`` False) or PUT (each given key
    replaced). Every changed key is validated; a null key takes its empty value."""
    result = dict(fields)
    for key, value in body.items():
        if value is None:
            result[key] = copy.deepcopy(EMPTY_FIELDS[key])
        else:
            result[key] = _merged(None if replace else fields.get(key), value)
        result[key] = _VALIDATORS[key](result[key])
    return result


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _key(key: str, where: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise bad_request(
            f"Invalid key in {where}: {short_json(key)} - expected 1 to {MAX_KEY_LENGTH} characters"
        )


def _objects(value: Any, where: str) -> dict[str, Any]:
    """An object whose every value is an object (``datasets``, ``assignments_meta``...)."""
    for key, item in value.items():
        _key(key, where)
        if not isinstance(item, dict):
            raise bad_request(
                f"Invalid type for {where}.{key}: {short_json(item)} - expected type object"
            )
    return dict(value)


def _only(value: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = [key for key in value if key not in keys]
    if unknown:
        raise bad_request(
            f"Unknown json key `{unknown[0]}` in {where} - expected some of {', '.join(keys)}"
        )


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise bad_request(
            f"Invalid value for name: {short_json(value)} - expected a string of 1 to "
            f"{MAX_NAME_LENGTH} characters"
        )
    return value


def _state(value: Any) -> str:
    if value not in STATES:
        raise bad_request(
            f"Invalid value for state: {short_json(value)} - expected one of {', '.join(STATES)}"
        )
    return str(value)


def _project(value: Any) -> str:
    if not isinstance(value, str):
        raise bad_request(f"Invalid type for project: {short_json(value)} - expected type string")
    try:
        return check_project_id(value)
    except ValueError as exc:
        raise bad_request(str(exc).replace("for id", "for project")) from None


def _metadata(value: Any) -> dict[str, Any] | None:
    try:
        return validate_metadata(value)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _values(value: Any) -> dict[str, Any]:
    """``{metric: {name, value, value_stddev}}``; ``value`` required and finite."""
    result = {}
    for name, entry in value.items():
        _key(name, "values")
        where = f"values.{name}"
        if not isinstance(entry, dict):
            raise bad_request(
                f"Invalid type for {where}: {short_json(entry)} - expected type object"
            )
        _only(entry, ("name", "value", "value_stddev", "object"), where)
        if not _number(entry.get("value")):
            raise bad_request(
                f"Invalid value for {where}.value: {short_json(entry.get('value'))} - expected "
                "a finite number"
            )
        stddev = entry.get("value_stddev")
        if stddev is not None and not (_number(stddev) and stddev >= 0):
            raise bad_request(
                f"Invalid value for {where}.value_stddev: {short_json(stddev)} - expected a "
                "finite number >= 0 or null"
            )
        result[name] = {"name": name, "value": entry["value"], "value_stddev": stddev}
    return result


def _assignments(value: Any) -> dict[str, Any]:
    for name, item in value.items():
        _key(name, "assignments")
        if not (_number(item) or isinstance(item, str)):
            raise bad_request(
                f"Invalid value for assignments.{name}: {short_json(item)} - expected a finite "
                "number or a string"
            )
    return dict(value)


def _assignments_meta(value: Any) -> dict[str, Any]:
    for name, meta in _objects(value, "assignments_meta").items():
        _only(meta, ("source",), f"assignments_meta.{name}")
        if not isinstance(meta.get("source", ""), str):
            raise bad_request(
                f"Invalid type for assignments_meta.{name}.source: "
                f"{short_json(meta['source'])} - expected type string"
            )
    return dict(value)


def _assignments_sources(value: Any) -> dict[str, Any]:
    for name, source in _objects(value, "assignments_sources").items():
        where = f"assignments_sources.{name}"
        _only(source, ("sort", "default_show"), where)
        sort = source.get("sort", 0)
        if isinstance(sort, bool) or not isinstance(sort, int):
            raise bad_request(
                f"Invalid type for {where}.sort: {short_json(sort)} - expected type integer"
            )
        if not isinstance(source.get("default_show", False), bool):
            raise bad_request(
                f"Invalid type for {where}.default_show: {short_json(source['default_show'])} - "
                "expected type boolean"
            )
    return dict(value)


def _strings(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    _only(value, (*keys, "object"), where)
    for key in keys:
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise bad_request(
                f"Invalid type for {where}.{key}: {short_json(item)} - expected type string"
            )
    return {key: value[key] for key in keys if value.get(key) is not None}


def _logs(value: Any) -> dict[str, Any]:
    result = {}
    for stream, log in _objects(value, "logs").items():
        content = _strings(log, ("content",), f"logs.{stream}").get("content", "")
        result[stream] = {"content": content[:MAX_LOG_CHARS]}
    return result


def _free_object(value: Any) -> dict[str, Any]:
    return dict(value)


def _boolean(value: Any) -> bool:
    return bool(value)


_VALIDATORS = {
    "assignments": _assignments,
    "assignments_meta": _assignments_meta,
    "assignments_sources": _assignments_sources,
    "datasets": lambda value: _objects(value, "datasets"),
    "deleted": _boolean,
    "dev_metadata": _free_object,
    "favorite": _boolean,
    "logs": _logs,
    "metadata": _metadata,
    "model": lambda value: _strings(value, ("type",), "model"),
    "name": _name,
    "project": _project,
    "source_code": lambda value: _strings(value, ("content", "hash"), "source_code"),
    "state": _state,
    "sys_metadata": _free_object,
    "values": _values,
}
