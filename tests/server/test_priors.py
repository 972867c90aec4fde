"""Parameter priors on the wire (SQLite and PostgreSQL): validated on create and on bounds
updates, rendered as the open-source server renders them, accepted when posted back."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import sigopt

from tests.server.conftest import Api

NORMAL = {"name": "normal", "mean": 0.7, "scale": 0.1}
BETA = {"name": "beta", "shape_a": 2.0, "shape_b": 5.0}


def _spec(prior: Any, **parameter: Any) -> dict[str, Any]:
    x = {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}, "prior": prior}
    x.update(parameter)
    return {
        "name": "priors",
        "parameters": [x, {"name": "n", "type": "int", "bounds": {"min": 1, "max": 4}}],
    }


def test_priors_are_stored_and_rendered_like_the_open_source_server(
    conn: sigopt.Connection, api: Api
) -> None:
    for prior, rendered in (
        (NORMAL, {"object": "normal_prior", **NORMAL}),
        (BETA, {"object": "beta_prior", **BETA}),
    ):
        exp = conn.experiments().create(**_spec(prior))
        x = next(p for p in exp.parameters if p.name == "x")
        assert x.prior.to_json() == rendered
        n = next(p for p in exp.parameters if p.name == "n")
        assert n.prior is None
        # A fetched experiment posted back (``object`` keys and all) is accepted as it is.
        fetched = api.ok("GET", f"/v1/experiments/{exp.id}")
        again = {"name": "again", "parameters": copy.deepcopy(fetched["parameters"])}
        for param in again["parameters"]:
            for key in ("default_value", "precision", "grid"):
                param.pop(key)
        assert api.ok("POST", "/v1/experiments", json=again)["parameters"] == fetched["parameters"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_spec(NORMAL, type="int"), "only double parameters can have a prior"),
        (
            _spec(NORMAL, type="categorical", bounds=None, categorical_values=["a", "b"]),
            "only double parameters can have a prior",
        ),
        (
            _spec(NORMAL, transformation="log", bounds={"min": 0.1, "max": 1}),
            "log transformation cannot have a prior",
        ),
        (_spec(NORMAL, grid=[0.1, 0.2]), "a grid parameter cannot have a prior"),
        (_spec({"name": "cauchy", "mean": 0.5}), 'Invalid prior type for parameter x: "cauchy"'),
        (_spec({**NORMAL, "mean": 1.5}), "prior.mean for parameter x: 1.5 - expected within"),
        (_spec({**NORMAL, "scale": 0}), "prior.scale for parameter x: 0.0 - expected > 0"),
        (_spec({**NORMAL, "scale": -1}), "prior.scale"),
        (_spec({"name": "normal", "scale": 1}), 'Missing required json key "prior.mean"'),
        (_spec({**BETA, "shape_a": 0}), "prior.shape_a for parameter x: 0.0 - expected > 0"),
        (_spec({"name": "beta", "shape_a": 1}), 'Missing required json key "prior.shape_b"'),
        (_spec({**NORMAL, "shape_a": 1}), "a normal prior has no shape_a"),
        (_spec({**BETA, "mean": 0.5}), "a beta prior has no mean"),
        (_spec({**NORMAL, "skew": 1}), "`skew`"),
        (_spec({**NORMAL, "mean": "0.5"}), "Invalid type for parameters.0.prior.mean"),
        (_spec("normal"), "Invalid type for parameters.0.prior"),
    ],
)
def test_bad_priors_are_rejected(api: Api, spec: dict[str, Any], message: str) -> None:
    response = api.post("/v1/experiments", json=copy.deepcopy(spec))
    assert response.status_code == 400, response.text
    assert message in response.json()["message"], response.json()


def test_bounds_updates_keep_the_prior_mean_inside(api: Api) -> None:
    exp = api.ok("POST", "/v1/experiments", json=_spec(NORMAL))
    path = f"/v1/experiments/{exp['id']}"
    narrowed = {"parameters": [{"name": "x", "bounds": {"min": 0.0, "max": 0.5}}]}
    response = api.put(path, json=narrowed)
    assert response.status_code == 400
    assert "prior's mean 0.7 must stay within [0.0, 0.5]" in response.json()["message"]
    widened = {"parameters": [{"name": "x", "bounds": {"min": 0.5, "max": 2.0}}]}
    x = next(p for p in api.ok("PUT", path, json=widened)["parameters"] if p["name"] == "x")
    assert x["bounds"]["max"] == 2.0 and x["prior"]["mean"] == 0.7
