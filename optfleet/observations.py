"""Reading observations as the SigOpt API returns them (for `optfleet status` and the demo)."""

from __future__ import annotations

from typing import Any


def observation_value(observation: dict[str, Any]) -> float | None:
    """The first metric value of a successful observation."""
    if observation.get("failed"):
        return None
    values = observation.get("values") or []
    if values and values[0].get("value") is not None:
        return float(values[0]["value"])
    value = observation.get("value")
    return float(value) if value is not None else None
