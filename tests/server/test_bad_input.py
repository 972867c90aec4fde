"""Bad input: each case is a clear 4xx naming what is wrong, never a 500, and nothing is written."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.server.conftest import MIXED_SPEC, Api

PARAMS = copy.deepcopy(MIXED_SPEC["parameters"])


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MIXED_SPEC)
    spec.update(changes)
    return spec


# (method, path, body, status, words the message must contain); {e} = experiment, {s} = suggestion
CASES: list[tuple[str, str, Any, int, list[str]]] = [
    ("POST", "/v1/experiments", b'{"name": "x",', 400, ["Malformed json"]),
    (
        "POST",
        "/v1/experiments",
        b'{"name": "x", "parameters": [], "observation_budget": NaN}',
        400,
        ["NaN"],
    ),
    ("POST", "/v1/experiments", b'{"name": Infinity}', 400, ["Infinity"]),
    ("POST", "/v1/experiments", b'{"name": "\\u0000"}', 400, ["NUL"]),
    ("POST", "/v1/experiments", b'{"name": "\\ud800"}', 400, ["unicode"]),
    ("POST", "/v1/experiments", b"\xff\xfe", 400, ["Malformed json"]),
    ("POST", "/v1/experiments", b"[1, 2]", 400, ["expected type object"]),
    ("POST", "/v1/experiments", b"x" * (1024 * 1024 + 1), 413, ["limit"]),
    ("POST", "/v1/experiments", _spec(budget=10), 400, ["`budget`"]),
    ("POST", "/v1/experiments", _spec(name=""), 400, ["name"]),
    ("POST", "/v1/experiments", _spec(name=5), 400, ["name", "string"]),
    ("POST", "/v1/experiments", _spec(parameters=[]), 400, ["at least one parameter"]),
    ("POST", "/v1/experiments", _spec(parallel_bandwidth=0), 400, ["parallel_bandwidth"]),
    ("POST", "/v1/experiments", _spec(observation_budget=-1), 400, ["observation_budget"]),
    ("POST", "/v1/experiments", _spec(observation_budget=10**30), 400, ["observation_budget"]),
    (
        "POST",
        "/v1/experiments",
        _spec(observation_budget="10"),
        400,
        ["observation_budget", "integer"],
    ),
    ("POST", "/v1/experiments", _spec(type="bayes"), 400, ["type"]),
    (
        "POST",
        "/v1/experiments",
        _spec(metrics=[{"name": "a", "objective": "up"}]),
        400,
        ["objective"],
    ),
    ("POST", "/v1/experiments", _spec(metrics=["a", "b", "c"]), 400, ["optimize"]),
    ("POST", "/v1/experiments", _spec(metrics=["a", "a"]), 400, ["Duplicate metric"]),
    (
        "POST",
        "/v1/experiments",
        _spec(parameters=[{"name": "n", "type": "int", "bounds": {"min": 0.5, "max": 3}}]),
        400,
        ["min", "integer"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(parameters=[{"name": "n", "type": "double", "bounds": {"min": 3, "max": 1}}]),
        400,
        ["n", "greater than min"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(
            parameters=[
                {
                    "name": "n",
                    "type": "double",
                    "bounds": {"min": 0, "max": 1},
                    "transformation": "log",
                }
            ]
        ),
        400,
        ["log", "min > 0"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(parameters=[{"name": "n", "type": "double"}]),
        400,
        ["bounds", "n"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(parameters=[{"name": "c", "type": "categorical", "categorical_values": ["a"]}]),
        400,
        ["at least 2"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(parameters=[{"name": "c", "type": "categorical", "categorical_values": ["a", "a"]}]),
        400,
        ["Duplicate categorical"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(parameters=[PARAMS[0], PARAMS[0]]),
        400,
        ["Duplicate parameter", "lr"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(
            parameters=[{"name": "n", "type": "int", "bounds": {"min": 0, "max": 3}, "extra": 1}]
        ),
        400,
        ["`extra`"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(conditionals=[{"name": "c", "values": ["a"]}]),
        400,
        ["Conditional c", "at least 2 values"],
    ),
    ("POST", "/v1/experiments", _spec(metadata={"k": True}), 400, ["metadata.k"]),
    (
        "POST",
        "/v1/experiments",
        _spec(
            parameters=[{"name": "n", "type": "double", "bounds": {"min": -1e308, "max": 1e308}}]
        ),
        400,
        ["finite"],
    ),
    (
        "POST",
        "/v1/experiments",
        _spec(
            type="grid",
            parameters=[
                {"name": f"p{i}", "type": "int", "bounds": {"min": 0, "max": 99}} for i in range(4)
            ],
        ),
        400,
        ["grid points"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"assignments": {"lr": 10**400, "layers": 2, "act": "relu"}, "value": 1},
        400,
        ["lr", "out of bounds"],
    ),
    ("GET", "/v1/experiments?limit=5000", None, 400, ["Exceeded maximum limit"]),
    ("GET", "/v1/experiments/424242", None, 404, ["not be found"]),
    (
        "PUT",
        "/v1/experiments/{e}",
        {"parameters": [{"name": "layers", "type": "double"}]},
        400,
        ["type", "layers"],
    ),
    (
        "PUT",
        "/v1/experiments/{e}",
        {"parameters": [{"name": "nope", "bounds": {"min": 0, "max": 1}}]},
        400,
        ["nope"],
    ),
    (
        "PUT",
        "/v1/experiments/{e}",
        {"parameters": [{"name": "layers", "bounds": {"min": 5, "max": 2}}]},
        400,
        ["layers"],
    ),
    ("PUT", "/v1/experiments/{e}", {"observation_budget": 0}, 400, ["observation_budget"]),
    ("PUT", "/v1/experiments/{e}", {"colour": "red"}, 400, ["`colour`"]),
    ("POST", "/v1/experiments/{e}/suggestions", {"metadata": {"x": [1]}}, 400, ["metadata.x"]),
    (
        "POST",
        "/v1/experiments/{e}/suggestions",
        {"assignments": {"lr": 0.1}},
        400,
        ["Missing assignments", "layers"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/suggestions",
        {"assignments": {"lr": 0.1, "layers": 2, "act": "swish"}},
        400,
        ["act", "swish"],
    ),
    (
        "GET",
        "/v1/experiments/{e}/suggestions?state=closed",
        None,
        400,
        ["Unrecognized state closed"],
    ),
    ("GET", "/v1/experiments/{e}/suggestions?deleted=maybe", None, 400, ["deleted"]),
    ("GET", "/v1/experiments/{e}/suggestions?id=1,x", None, 400, ["id"]),
    ("GET", "/v1/experiments/{e}/suggestions?metadata.k=%00", None, 400, ["NUL"]),
    ("GET", "/v1/experiments/{e}/suggestions/999999", None, 404, ["not be found"]),
    ("PUT", "/v1/experiments/{e}/suggestions/{s}", {"metadata": "x"}, 400, ["metadata"]),
    ("DELETE", "/v1/experiments/{e}/suggestions?state=closed", None, 400, ["Unrecognized state"]),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"value": 1},
        400,
        ["exactly one of", "suggestion"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "assignments": {}, "value": 1},
        400,
        ["exactly one of"],
    ),
    ("POST", "/v1/experiments/{e}/observations", {"suggestion": "{s}"}, 400, ['"value"']),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "failed": True, "value": 1},
        400,
        ["Cannot provide `values` if observation has failed"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "value": "high"},
        400,
        ["value", "number"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "value": 1, "values": [{"value": 1}]},
        400,
        ["either"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "values": [{"name": "loss", "value": 1}]},
        400,
        ["loss"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "values": [{"name": "acc"}]},
        400,
        ["values.0.value"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "value": 1, "value_stddev": -1},
        400,
        ["value_stddev"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "999999", "value": 1},
        400,
        ["No suggestion: 999999"],
    ),
    ("POST", "/v1/experiments/{e}/observations", {"suggestion": "abc", "value": 1}, 400, ["abc"]),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": True, "value": 1},
        400,
        ["suggestion"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"assignments": {"lr": 0.1, "layers": 2.5, "act": "relu"}, "value": 1},
        400,
        ["layers", "integer"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"assignments": {"lr": 0.1, "layers": 2, "act": "relu", "z": 1}, "value": 1},
        400,
        ["Unknown parameters", "z"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"assignments": {"lr": 0.1, "layers": 9, "act": "relu"}, "value": 1},
        400,
        ["out of bounds", "layers"],
    ),
    (
        "POST",
        "/v1/experiments/{e}/observations",
        {"suggestion": "{s}", "value": 1, "metadata": {"k" * 101: 1}},
        400,
        ["metadata key"],
    ),
    ("GET", "/v1/experiments/{e}/observations?sort=value", None, 400, ["sort"]),
    ("PUT", "/v1/experiments/{e}/observations/999999", {"value": 1}, 404, ["not be found"]),
    ("DELETE", "/v1/experiments/{e}/observations/999999", None, 404, ["not be found"]),
]


def _counts(api: Api, eid: str) -> tuple[int, int, int, Any]:
    return (
        api.ok("GET", "/v1/experiments", params={"state": "all", "limit": 0})["count"],
        api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"limit": 0, "deleted": "true"})[
            "count"
        ],
        api.ok(
            "GET", f"/v1/experiments/{eid}/observations", params={"limit": 0, "deleted": "true"}
        )["count"],
        api.ok("GET", f"/v1/experiments/{eid}"),
    )


@pytest.fixture(scope="module")
def target(server: Any) -> tuple[str, str]:
    api = Api(server)
    eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(MIXED_SPEC))["id"]
    sid = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})["id"]
    return eid, sid


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    CASES,
    ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)],
)
def test_bad_input_is_rejected_clearly_and_writes_nothing(
    api: Api,
    target: tuple[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
    words: list[str],
) -> None:
    eid, sid = target
    path = path.format(e=eid, s=sid)
    before = _counts(api, eid)
    if isinstance(body, bytes):
        response = api.request(
            method, path, data=body, headers={"Content-Type": "application/json"}
        )
    elif body is None:
        response = api.request(method, path)
    else:
        payload = json.loads(json.dumps(body).replace('"{s}"', json.dumps(sid)))
        response = api.request(method, path, json=payload)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status
    for word in words:
        assert word in error["message"], (word, error["message"])
    after = _counts(api, eid)
    assert after[:3] == before[:3]
    assert (
        after[3]["updated"] == before[3]["updated"]
        and after[3]["parameters"] == before[3]["parameters"]
    )
