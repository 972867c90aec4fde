"""Metric evaluations a client reports (observation or checkpoint ``values``), checked against
the experiment's metrics."""

from __future__ import annotations

from typing import Any

from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.schemas import ValueIn


def values_in_metric_order(
    metrics: list[dict[str, Any]], values: list[ValueIn]
) -> list[dict[str, Any]]:
    """``[{name, value, value_stddev}]`` in the experiment's metric order, or a 400 naming an
    unknown or repeated metric. An unnamed value is the single metric's."""
    by_name = {m["name"]: m for m in metrics}
    given: dict[str | None, ValueIn] = {}
    for entry in values:
        name = entry.name
        if name is None and len(metrics) == 1:
            name = metrics[0]["name"]
        if name not in by_name:
            expected = [m["name"] for m in metrics]
            raise bad_request(
                f"Unknown metric name in values: {short_json(entry.name)} - expected one of "
                f"{short_json(expected)}"
            )
        if name in given:
            raise bad_request(f"Duplicate value for metric {short_json(name)} in values")
        given[name] = entry
    return [
        {
            "name": m["name"],
            "value": given[m["name"]].value,
            "value_stddev": given[m["name"]].value_stddev,
        }
        for m in metrics
        if m["name"] in given
    ]
