"""The evaluation contract: parse a result into an observation body, or a clear failure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional


@dataclass
class Outcome:
    """What one evaluation produced: metric values, or a failure with its reason."""

    values: Optional[List[Dict[str, Any]]] = None
    failure_reason: Optional[str] = None
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.values is None


class InvalidResult(ValueError):
    """The evaluation's result does not follow the contract; the message says how."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidResult(f"{where} must be a number, got {json.dumps(value)[:60]}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidResult(f"{where} must be a finite number, got {value}")
    return number


def values_from(value: Any) -> List[Dict[str, Any]]:
    """Normalise a number or a list of named values into the wire's ``values`` list."""
    if isinstance(value, list):
        if not value:
            raise InvalidResult("values must be a non-empty list")
        out: List[Dict[str, Any]] = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidResult(f"values[{index}] must be an object with name and value")
            unknown = set(item) - {"name", "value", "value_stddev"}
            if unknown:
                raise InvalidResult(f"values[{index}] has unknown keys {sorted(unknown)}")
            entry: Dict[str, Any] = {"value": _number(item.get("value"), f"values[{index}].value")}
            if item.get("name") is not None:
                if not isinstance(item["name"], str):
                    raise InvalidResult(f"values[{index}].name must be a string")
                entry["name"] = item["name"]
            if item.get("value_stddev") is not None:
                stddev = _number(item["value_stddev"], f"values[{index}].value_stddev")
                if stddev < 0:
                    raise InvalidResult(f"values[{index}].value_stddev must be >= 0")
                entry["value_stddev"] = stddev
            out.append(entry)
        return out
    return [{"value": _number(value, "value")}]


def outcome_from_json(raw: Any) -> Outcome:
    """Interpret ``{"value"}``, ``{"values"}`` or ``{"failed", "reason"}`` (+ ``metadata``)."""
    if not isinstance(raw, dict):
        raise InvalidResult("result must be a JSON object")
    unknown = set(raw) - {"value", "value_stddev", "values", "failed", "reason", "metadata"}
    if unknown:
        raise InvalidResult(f"result has unknown keys {sorted(unknown)}")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidResult("result metadata must be an object")
    if raw.get("failed"):
        reason = raw.get("reason")
        return Outcome(
            failure_reason=f"evaluation reported failure: {reason if reason else 'no reason'}",
            metadata=metadata,
        )
    if "values" in raw:
        return Outcome(values=values_from(raw["values"]), metadata=metadata)
    if "value" in raw:
        values = values_from(raw["value"])
        if raw.get("value_stddev") is not None:
            values[0]["value_stddev"] = _number(raw["value_stddev"], "value_stddev")
        return Outcome(values=values, metadata=metadata)
    raise InvalidResult('result needs "value", "values" or "failed": true')


def outcome_from_text(text: str) -> Outcome:
    """Parse a result file's text (NaN and Infinity are rejected, as the wire rejects them)."""
    if not text.strip():
        raise InvalidResult("result file is empty")

    def reject_constant(name: str) -> Any:
        raise InvalidResult(f"result contains {name}, which is not a finite number")

    try:
        raw = json.loads(text, parse_constant=reject_constant)
    except InvalidResult:
        raise
    except ValueError as exc:
        raise InvalidResult(f"result file is not valid JSON ({exc})") from None
    return outcome_from_json(raw)


def result_in(path: Path) -> Optional[Outcome]:
    """The outcome of a result file that exists and follows the contract, else None."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    try:
        return outcome_from_text(text)
    except InvalidResult:
        return None
