"""Wire details the official client cannot express, over raw HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import requests

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.tokens import create_token
from suggestion_server.wire.paging import encode_marker
from tests.server.conftest import MIXED_SPEC, Api
from tests.support.server import RunningServer


def _experiment(api: Api, spec: dict[str, Any] = MIXED_SPEC) -> str:
    return str(api.ok("POST", "/v1/experiments", json=copy.deepcopy(spec))["id"])


def _suggestions(api: Api, eid: str, n: int, **metadata: str) -> list[str]:
    return [
        api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={"metadata": metadata or None})[
            "id"
        ]
        for _ in range(n)
    ]


def test_health_needs_no_auth(server: RunningServer) -> None:
    for method in ("GET", "HEAD", "POST"):
        response = requests.request(method, f"{server.url}/health", timeout=10)
        assert response.status_code == 200
    assert requests.get(f"{server.url}/health", timeout=10).json() == {}


def test_authentication_statuses(server: RunningServer) -> None:
    url = f"{server.url}/v1/experiments"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401 and "No API token" in missing.json()["message"]
    assert missing.json()["status"] == 401
    for header in (
        f"Bearer {server.token}",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"x").decode(),
    ):
        bad = requests.get(url, headers={"Authorization": header}, timeout=10)
        assert bad.status_code == 400, header
        assert "Could not parse API token" in bad.json()["message"]
    unknown = requests.get(url, auth=("nope", ""), timeout=10)
    assert unknown.status_code == 403 and unknown.json()["token_status"] == "revoked"
    assert unknown.headers["content-type"].startswith("application/json")
    assert requests.get(url, auth=(server.token, ""), timeout=10).status_code == 200


def test_other_clients_experiments_are_not_found(server: RunningServer, api: Api) -> None:
    eid = _experiment(api)
    sid = _suggestions(api, eid, 1)[0]
    store = Store(make_engine(server.db_url))
    try:
        other_token = create_token(store, "other team")
    finally:
        store.dispose()
    other = requests.Session()
    other.auth = (other_token, "")
    for method, path in (
        ("GET", f"/v1/experiments/{eid}"),
        ("PUT", f"/v1/experiments/{eid}"),
        ("DELETE", f"/v1/experiments/{eid}"),
        ("GET", f"/v1/experiments/{eid}/suggestions"),
        ("POST", f"/v1/experiments/{eid}/suggestions"),
        ("GET", f"/v1/experiments/{eid}/suggestions/{sid}"),
        ("POST", f"/v1/experiments/{eid}/observations"),
    ):
        response = other.request(method, server.url + path, json={}, timeout=10)
        assert response.status_code == 404, (method, path, response.text)
    assert other.get(f"{server.url}/v1/experiments", timeout=10).json()["count"] == 0
    assert api.ok("GET", f"/v1/experiments/{eid}")["state"] == "active"


def test_paging_markers_follow_the_wire(api: Api) -> None:
    eid = _experiment(api)
    ids = [int(i) for i in _suggestions(api, eid, 3)]
    path = f"/v1/experiments/{eid}/suggestions"
    first = api.ok("GET", path, params={"state": "open", "limit": 1})
    assert [int(s["id"]) for s in first["data"]] == [ids[2]]
    assert first["count"] == 3
    assert first["paging"]["before"] == encode_marker(ids[2])
    second = api.ok(
        "GET", path, params={"state": "open", "limit": 1, "before": first["paging"]["before"]}
    )
    assert [int(s["id"]) for s in second["data"]] == [ids[1]]
    third = api.ok(
        "GET", path, params={"state": "open", "limit": 1, "before": second["paging"]["before"]}
    )
    assert [int(s["id"]) for s in third["data"]] == [ids[0]]
    assert third["paging"]["before"] is None
    # Walking back with `after` towards newer items until the newest end.
    back = api.ok(
        "GET", path, params={"limit": 1, "after": third["paging"]["after"] or encode_marker(ids[0])}
    )
    assert [int(s["id"]) for s in back["data"]] == [ids[1]]
    newest = api.ok("GET", path, params={"limit": 5, "after": encode_marker(ids[0])})
    assert [int(s["id"]) for s in newest["data"]] == [ids[2], ids[1]]
    assert newest["paging"]["after"] is None
    empty = api.ok("GET", path, params={"limit": 0})
    assert empty["data"] == [] and empty["count"] == 3
    assert empty["paging"]["before"] == encode_marker(ids[2] + 1)
    default = api.ok("GET", path)
    assert len(default["data"]) == 3 and default["paging"]["before"] is None
    for params, message in (
        ({"limit": 1001}, "Exceeded maximum limit: 1000"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "not-a-marker"}, "Invalid paging marker"),
        ({"before": ""}, "Invalid paging marker"),
        ({"after": "CgIQ"}, "Invalid paging marker"),
    ):
        response = api.get(path, params=params)
        assert response.status_code == 400, params
        assert message in response.json()["message"]


def test_marker_encoding_matches_open_source_server() -> None:
    assert encode_marker(3) == "CgIQAw"


def test_skip_header_fields_and_delete_body(api: Api) -> None:
    eid = _experiment(api)
    skipped = api.post(
        f"/v1/experiments/{eid}/suggestions", headers={"X-Response-Content": "skip"}, json={}
    )
    assert skipped.status_code == 204 and skipped.content == b""
    sid = _suggestions(api, eid, 1)[0]
    partial = api.ok(
        "GET", f"/v1/experiments/{eid}/suggestions/{sid}", params={"fields": "id,state"}
    )
    assert partial == {"id": sid, "state": "open"}
    page = api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"fields": "id"})
    assert all(set(item) == {"id"} for item in page["data"]) and page["count"] == 2
    unknown = api.get(f"/v1/experiments/{eid}", params={"fields": "id,nonsense"})
    assert unknown.status_code == 400 and "nonsense" in unknown.json()["message"]
    deleted = api.delete(f"/v1/experiments/{eid}/suggestions/{sid}")
    assert deleted.status_code == 200 and deleted.json() == {}


def test_unknown_routes_and_methods(api: Api, server: RunningServer) -> None:
    wrong = api.get("/v1/experimentz")
    assert wrong.status_code == 404
    assert wrong.json() == {"message": "Endpoint not found: /v1/experimentz", "status": 404}
    outside = requests.get(f"{server.url}/suggestionz/1", auth=(server.token, ""), timeout=10)
    assert outside.status_code == 404 and "must begin with /v1" in outside.json()["message"]
    assert api.get("/v1/experiments/abc").status_code == 404
    assert api.get("/v1/experiments/99999999999999999999999").status_code == 404
    assert api.get("/v1/experiments/9223372036854775807").status_code == 404
    method = api.request("PATCH", "/v1/experiments")
    assert method.status_code == 405
    assert "accepts only the following methods" in method.json()["message"]


def test_metadata_rules(api: Api) -> None:
    eid = _experiment(api)
    path = f"/v1/experiments/{eid}/suggestions"
    ok_cases = [
        {f"k{i}": i for i in range(100)},
        {"k" * 100: "v"},
        {"v": "ü" * 500},
        {"": "empty key"},
        {"big": 12345678901234567890, "f": 1.5e300},
    ]
    for metadata in ok_cases:
        response = api.post(path, json={"metadata": metadata})
        assert response.status_code == 200, response.text
        assert response.json()["metadata"] == metadata
    dropped = api.ok("POST", path, json={"metadata": {"n": None, "k": "v"}})
    assert dropped["metadata"] == {"k": "v"}
    assert api.ok("POST", path, json={"metadata": {}})["metadata"] == {}
    assert api.ok("POST", path, json={})["metadata"] is None
    before = api.ok("GET", path, params={"limit": 0})["count"]
    for metadata, needle in (
        ({f"k{i}": i for i in range(101)}, "at most 100 keys"),
        ({"k" * 101: "v"}, "metadata key"),
        ({"v": "x" * 501}, "metadata.v"),
        ({"b": True}, "metadata.b"),
        ({"o": {"nested": 1}}, "metadata.o"),
        ({"a": [1]}, "metadata.a"),
        ("a string", "expected type object"),
    ):
        response = api.post(path, json={"metadata": metadata})
        assert response.status_code == 400, metadata
        assert needle in response.json()["message"], response.json()
    assert api.ok("GET", path, params={"limit": 0})["count"] == before


def test_suggestion_create_ignores_unknown_keys_but_observations_do_not(api: Api) -> None:
    eid = _experiment(api)
    s = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={"bogus": 1})
    response = api.post(
        f"/v1/experiments/{eid}/observations", json={"suggestion": s["id"], "value": 1, "bogus": 1}
    )
    assert response.status_code == 400 and "`bogus`" in response.json()["message"]
    ignored = api.ok(
        "PUT", f"/v1/experiments/{eid}/suggestions/{s['id']}", json={"assignments": {"x": 1}}
    )
    assert ignored["assignments"] == s["assignments"]


def test_manual_suggestion_and_grid_experiment(api: Api) -> None:
    eid = _experiment(api)
    manual = api.ok(
        "POST",
        f"/v1/experiments/{eid}/suggestions",
        json={"assignments": {"lr": 0.1, "layers": 2, "act": "tanh"}},
    )
    assert manual["assignments"] == {"act": "tanh", "layers": 2, "lr": 0.1}
    out = api.post(
        f"/v1/experiments/{eid}/suggestions",
        json={"assignments": {"lr": 0.1, "layers": 99, "act": "tanh"}},
    )
    assert out.status_code == 400 and "layers" in out.json()["message"]
    grid = api.ok(
        "POST",
        "/v1/experiments",
        json={
            "name": "grid",
            "type": "grid",
            "parameters": [
                {
                    "name": "a",
                    "type": "double",
                    "bounds": {"min": 0, "max": 1},
                    "grid": [0.0, 0.5, 1.0],
                },
                {"name": "c", "type": "categorical", "categorical_values": ["p", "q"]},
            ],
        },
    )
    points = {
        (s["assignments"]["a"], s["assignments"]["c"])
        for s in (
            api.ok("POST", f"/v1/experiments/{grid['id']}/suggestions", json={}) for _ in range(6)
        )
    }
    assert points == {(a, c) for a in (0.0, 0.5, 1.0) for c in ("p", "q")}


def test_duplicate_observation_handling(api: Api) -> None:
    eid = _experiment(api)
    sid = _suggestions(api, eid, 1)[0]
    path = f"/v1/experiments/{eid}/observations"
    body = {
        "suggestion": sid,
        "values": [{"name": "acc", "value": 0.5}],
        "metadata": {"attempt": 1},
    }
    first = api.ok("POST", path, json=body)
    assert api.ok("POST", path, json=body)["id"] == first["id"]
    conflict = api.post(path, json={**body, "metadata": {"attempt": 2}})
    assert (
        conflict.status_code == 409 and f"observation {first['id']}" in conflict.json()["message"]
    )
    assert api.ok("GET", path, params={"limit": 0})["count"] == 1
    # After deleting the observation a new one may be reported; the suggestion stays closed.
    api.ok("DELETE", f"{path}/{first['id']}")
    assert api.ok("GET", f"/v1/experiments/{eid}/suggestions/{sid}")["state"] == "closed"
    second = api.ok("POST", path, json={**body, "metadata": {"attempt": 2}})
    assert second["id"] != first["id"]
    listed = api.ok("GET", path, params={"deleted": "True"})
    assert {o["id"] for o in listed["data"]} == {first["id"], second["id"]}
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["observation_count"] == 1


def test_observation_update_and_delete(api: Api) -> None:
    eid = _experiment(api)
    sid = _suggestions(api, eid, 1)[0]
    path = f"/v1/experiments/{eid}/observations"
    obs = api.ok(
        "POST",
        path,
        json={"suggestion": sid, "failed": True, "metadata": {"failure_reason": "oom"}},
    )
    fixed = api.ok("PUT", f"{path}/{obs['id']}", json={"values": [{"value": 0.8}]})
    assert fixed["failed"] is False and fixed["values"][0]["value"] == 0.8
    assert fixed["metadata"] == {"failure_reason": "oom"}
    cleared = api.ok("PUT", f"{path}/{obs['id']}", json={"metadata": None})
    assert cleared["metadata"] is None
    failed_again = api.ok("PUT", f"{path}/{obs['id']}", json={"failed": True})
    assert failed_again["values"] == []
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["best_observation"] is None
    other = _suggestions(api, eid, 1)[0]
    taken = api.ok("POST", path, json={"suggestion": other, "value": 0.1})
    moved = api.put(f"{path}/{obs['id']}", json={"suggestion": other})
    assert moved.status_code == 409 and f"observation {taken['id']}" in moved.json()["message"]
    api.ok("DELETE", path)
    assert api.ok("GET", path)["count"] == 0
    assert api.get(f"{path}/{obs['id']}").status_code == 404


def test_progress_counts_open_suggestions_and_metadata_filters(api: Api) -> None:
    eid = _experiment(api)
    mine = _suggestions(api, eid, 2, instance_id="i-a")
    _suggestions(api, eid, 3, instance_id="i-b")
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["open_suggestion_count"] == 5
    filtered = api.ok(
        "GET",
        f"/v1/experiments/{eid}/suggestions",
        params={"state": "open", "metadata.instance_id": "i-a"},
    )
    assert [s["id"] for s in filtered["data"]] == list(reversed(mine)) and filtered["count"] == 2
    api.ok(
        "POST",
        f"/v1/experiments/{eid}/observations",
        json={"suggestion": mine[0], "value": 1, "metadata": {"attempt": 3}},
    )
    hits = api.ok("GET", f"/v1/experiments/{eid}/observations", params={"metadata.attempt": "3"})
    assert hits["count"] == 1
    assert (
        api.ok("GET", f"/v1/experiments/{eid}/observations", params={"metadata.attempt": "4"})[
            "count"
        ]
        == 0
    )
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["open_suggestion_count"] == 4
    api.ok("DELETE", f"/v1/experiments/{eid}/suggestions")
    assert api.ok("GET", f"/v1/experiments/{eid}/suggestions")["count"] == 0


def test_two_metric_best_assignments_is_the_pareto_front(api: Api) -> None:
    eid = api.ok(
        "POST",
        "/v1/experiments",
        json={
            "name": "two",
            "observation_budget": 10,
            "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
            "metrics": [
                {"name": "a", "objective": "maximize"},
                {"name": "b", "objective": "minimize"},
            ],
        },
    )["id"]
    path = f"/v1/experiments/{eid}/observations"
    ids = {}
    for label, a, b in (("front1", 1.0, 1.0), ("front2", 2.0, 2.0), ("dominated", 0.5, 1.5)):
        ids[label] = api.ok(
            "POST",
            path,
            json={
                "assignments": {"x": 0.5},
                "values": [{"name": "a", "value": a}, {"name": "b", "value": b}],
            },
        )["id"]
    best = api.ok("GET", f"/v1/experiments/{eid}/best_assignments")
    assert {b["id"] for b in best["data"]} == {ids["front1"], ids["front2"]}
    one = api.post(path, json={"assignments": {"x": 0.5}, "value": 1.0})
    assert one.status_code == 400 and "single metric" in one.json()["message"]
    assert api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"limit": 0})["count"] == 0
    assert api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})["state"] == "open"


def test_openapi_describes_request_and_response_shapes(server: RunningServer) -> None:
    schema = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    components = schema["components"]["schemas"]
    for name in (
        "ExperimentCreate",
        "ObservationCreate",
        "SuggestionCreate",
        "ExperimentOut",
        "SuggestionOut",
    ):
        assert name in components, name
    create = schema["paths"]["/v1/experiments/{experiment_id}/observations"]["post"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("/ObservationCreate")
    assert "422" not in create["responses"]
