"""AI experiments and runs (docs/api.md, "Projects, AI experiments and runs") over raw HTTP
against a running server, on SQLite and PostgreSQL: the AIExperiment object and its progress,
Core routes on an AI experiment, runs with served and explicit suggestions, MERGE/PUT, the one
observation a run makes (also under racing MERGEs), project runs and their checkpoints,
best_training_runs, archiving, run reservations, and every refused input."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sigopt
from sqlalchemy import update

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.models import RunReservation
from tests.server.conftest import Api
from tests.server.test_runs_official_client import run_script
from tests.support.server import RunningServer

PARAMETERS = [
    {"name": "lr", "type": "double", "bounds": {"min": 0.001, "max": 1.0}},
    {"name": "depth", "type": "int", "bounds": {"min": 1, "max": 6}},
    {"name": "act", "type": "categorical", "categorical_values": ["relu", "tanh"]},
]


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "ai experiment",
        "parameters": PARAMETERS,
        "metrics": [{"name": "acc", "objective": "maximize"}],
        "budget": 10,
        "parallel_bandwidth": 2,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


class Project:
    """A fresh project of the api's client, with helpers for its AI experiments and runs."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = str(api.ok("GET", "/v1/tokens/self")["client"])
        self.id = f"ai-{uuid.uuid4().hex[:12]}"
        self.path = f"/v1/clients/{self.client}/projects/{self.id}"
        api.ok("POST", f"/v1/clients/{self.client}/projects", json={"id": self.id, "name": "t"})

    def create(self, **overrides: Any) -> requests.Response:
        return self.api.post(self.path + "/aiexperiments", json=spec(**overrides))

    def experiment(self, **overrides: Any) -> dict[str, Any]:
        answer = self.create(**overrides)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def new_run(self, eid: str, **body: Any) -> requests.Response:
        return self.api.post(f"/v1/aiexperiments/{eid}/training_runs", json={"name": "r", **body})

    def run(self, eid: str, **body: Any) -> dict[str, Any]:
        answer = self.new_run(eid, **body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def merge(self, run_id: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.api.request("MERGE", f"/v1/training_runs/{run_id}", json=body, **kwargs)

    def merged(self, run_id: str, body: Any) -> dict[str, Any]:
        answer = self.merge(run_id, body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def observations(self, eid: str) -> list[dict[str, Any]]:
        return list(self.api.ok("GET", f"/v1/experiments/{eid}/observations")["data"])

    def progress(self, eid: str) -> dict[str, Any]:
        return dict(self.api.ok("GET", f"/v1/aiexperiments/{eid}")["progress"])


@pytest.fixture
def project(api: Api) -> Project:
    return Project(api)


def test_the_ai_experiment_object(api: Api, project: Project) -> None:
    experiment = project.experiment(metadata={"team": "ml"})
    assert experiment["object"] == "aiexperiment" and experiment["runs_only"] is True
    assert experiment["project"] == project.id and experiment["budget"] == 10
    assert experiment["client"] == project.client and experiment["state"] == "active"
    assert "observation_budget" not in experiment and "development" not in experiment
    assert [p["name"] for p in experiment["parameters"]] == ["act", "depth", "lr"]
    assert experiment["metrics"][0]["name"] == "acc" and experiment["parallel_bandwidth"] == 2
    assert experiment["progress"] == {
        "object": "progress",
        "finished_run_count": 0,
        "active_run_count": 0,
        "total_run_count": 0,
        "remaining_budget": 10,
    }
    eid = experiment["id"]
    assert api.ok("GET", f"/v1/aiexperiments/{eid}")["name"] == "ai experiment"
    listed = api.ok("GET", project.path + "/aiexperiments")
    assert [e["id"] for e in listed["data"]] == [eid] and listed["count"] == 1
    assert eid in [e["id"] for e in api.ok("GET", "/v1/aiexperiments")["data"]]
    unbounded = project.experiment(budget=None)
    assert unbounded["budget"] is None and unbounded["progress"]["remaining_budget"] is None


def test_core_routes_on_an_ai_experiment(server: RunningServer, api: Api, project: Project) -> None:
    eid = project.experiment()["id"]
    moved = api.get(f"/v1/experiments/{eid}", allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/v1/aiexperiments/{eid}"
    assert api.ok("GET", f"/v1/experiments/{eid}")["object"] == "aiexperiment"  # followed
    connection = sigopt.Connection(client_token=server.token)
    connection.set_api_url(server.url)
    assert connection.experiments(eid).fetch().to_json()["object"] == "aiexperiment"

    for path, body in [
        ("suggestions", {}),
        ("observations", {"assignments": {"lr": 0.5, "depth": 2, "act": "relu"}, "value": 1}),
        ("observations/batch", {"observations": [{"failed": True, "suggestion": "1"}]}),
    ]:
        refused = api.post(f"/v1/experiments/{eid}/{path}", json=body)
        assert refused.status_code == 403, refused.text
        assert "please create runs instead" in refused.json()["message"]
    run = project.run(eid)
    project.merged(run["id"], {"values": {"acc": {"value": 0.5}}, "state": "completed"})
    listed = project.observations(eid)
    assert [o["suggestion"] for o in listed] == [run["suggestion"]]
    in_core_list = [e for e in api.ok("GET", "/v1/experiments")["data"] if e["id"] == eid]
    assert in_core_list[0]["runs_only"] is True and in_core_list[0]["project"] == project.id

    core = api.ok(
        "POST",
        "/v1/experiments",
        json={"name": "core", "parameters": PARAMETERS, "observation_budget": 5},
    )["id"]
    assert api.get(f"/v1/aiexperiments/{core}").status_code == 404
    assert api.post(f"/v1/aiexperiments/{core}/training_runs", json={"name": "r"}).status_code == (
        404
    )
    assert api.get(f"/v1/aiexperiments/{core}/best_training_runs").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"budget": 0}, ["budget", "positive integer"]),
        ({"budget": -3}, ["budget"]),
        ({"budget": 1.5}, ["budget"]),
        ({"budget": "5"}, ["budget"]),
        ({"budget": True}, ["budget"]),
        ({"observation_budget": 5}, ["observation_budget", "`budget`"]),
        ({"project": "elsewhere"}, ["project"]),
        ({"runs_only": True}, ["runs_only"]),
        ({"tasks": []}, ["tasks"]),
        ({"development": False}, ["development"]),
        ({"colour": "red"}, ["colour"]),
        ({"metrics": []}, ["metrics"]),
        ({"metrics": ["acc"]}, ["metrics", "name"]),
        ({"metrics": [{"objective": "maximize"}]}, ["metrics"]),
        ({"metrics": [{"name": ""}]}, ["metrics"]),
        ({"name": ""}, ["name"]),
        ({"parameters": []}, ["parameter"]),
        (
            {"parameters": [{"name": "d", "type": "int", "bounds": {"min": 0.5, "max": 3}}]},
            ["min", "integer"],
        ),
        ({"parameters": [{"name": "x", "type": "double"}]}, ["bounds", "x"]),
        ({"parallel_bandwidth": 0}, ["parallel_bandwidth"]),
        (
            {"metrics": [{"name": "a"}, {"name": "b"}], "budget": None},
            ["budget is required"],
        ),
    ],
)
def test_refused_ai_experiment_creates(
    api: Api, project: Project, overrides: dict[str, Any], words: list[str]
) -> None:
    answer = project.create(**overrides)
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    for word in words:
        assert word in message, message
    if "observation_budget" not in overrides:
        assert "observation_budget" not in message  # told in the AI experiment's words
    assert api.ok("GET", project.path + "/aiexperiments", params={"state": "all"})["count"] == 0


def test_ai_experiments_of_unknown_projects_and_other_clients(
    api: Api, other_api: Api, project: Project
) -> None:
    unknown = api.post(
        f"/v1/clients/{project.client}/projects/no-such-project/aiexperiments", json=spec()
    )
    assert unknown.status_code == 404
    experiment = project.experiment()
    eid = experiment["id"]
    run = project.run(eid)
    other_client = str(other_api.ok("GET", "/v1/tokens/self")["client"])
    assert other_api.post(project.path + "/aiexperiments", json=spec()).status_code == 404
    mine_in_theirs = f"/v1/clients/{other_client}/projects/{project.id}/aiexperiments"
    assert other_api.post(mine_in_theirs, json=spec()).status_code == 404
    for method, path, body in [
        ("GET", f"/v1/aiexperiments/{eid}", None),
        ("PUT", f"/v1/aiexperiments/{eid}", {"name": "x"}),
        ("DELETE", f"/v1/aiexperiments/{eid}", None),
        ("POST", f"/v1/aiexperiments/{eid}/training_runs", {"name": "x"}),
        ("GET", f"/v1/aiexperiments/{eid}/best_training_runs", None),
        ("GET", f"/v1/training_runs/{run['id']}", None),
        ("MERGE", f"/v1/training_runs/{run['id']}", {"state": "failed"}),
        ("PUT", f"/v1/training_runs/{run['id']}", {"name": "x"}),
        ("DELETE", f"/v1/training_runs/{run['id']}", None),
        (
            "POST",
            f"/v1/training_runs/{run['id']}/checkpoints",
            {"values": [{"name": "acc", "value": 1}]},
        ),
    ]:
        answer = other_api.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert other_api.ok("GET", "/v1/aiexperiments")["count"] == 0
    assert api.ok("GET", f"/v1/training_runs/{run['id']}")["state"] == "active"
    assert project.progress(eid)["total_run_count"] == 1


def test_a_run_gets_a_served_suggestion(api: Api, project: Project) -> None:
    eid = project.experiment()["id"]
    run = project.run(eid, metadata={"host": "gpu-1"})
    suggestion = api.ok("GET", f"/v1/experiments/{eid}/suggestions/{run['suggestion']}")
    assert run["object"] == "training_run" and run["experiment"] == eid
    assert run["project"] == project.id and run["state"] == "active"
    assert run["assignments"] == suggestion["assignments"] and suggestion["state"] == "open"
    # The suggestion carries the run's metadata as created (who holds the run, for Core tools).
    assert suggestion["metadata"] == {"host": "gpu-1"}
    assert isinstance(run["assignments"]["lr"], float)
    assert isinstance(run["assignments"]["depth"], int)
    assert run["assignments_meta"] == {name: {"source": "SigOpt"} for name in run["assignments"]}
    assert run["assignments_sources"] == {"SigOpt": {"sort": 1, "default_show": True}}
    assert run["metadata"] == {"host": "gpu-1"} and run["observation"] is None
    assert run["finished"] is False and run["completed"] is None and run["values"] == {}
    assert run["model"] == {"object": "model", "type": None}
    assert run["source_code"] == {"object": "source_code", "content": None, "hash": None}
    assert run["sys_metadata"] == {} and run["dev_metadata"] == {} and run["favorite"] is False
    assert api.ok("GET", f"/v1/training_runs/{run['id']}") == run
    second = project.run(eid)
    assert second["suggestion"] != run["suggestion"]
    assert second["assignments"] != run["assignments"]  # both open: no duplicate
    assert project.progress(eid)["active_run_count"] == 2


def test_explicit_assignments_and_runs_created_finished(api: Api, project: Project) -> None:
    eid = project.experiment()["id"]
    given = {"lr": 0.25, "depth": 3, "act": "tanh", "batch": 64}
    run = project.run(eid, assignments=given)
    suggestion = api.ok("GET", f"/v1/experiments/{eid}/suggestions/{run['suggestion']}")
    assert suggestion["assignments"] == {"act": "tanh", "depth": 3, "lr": 0.25}
    assert run["assignments"] == {"act": "tanh", "depth": 3, "lr": 0.25, "batch": 64}
    partial = project.new_run(eid, assignments={"lr": 0.5})
    assert partial.status_code == 400 and "depth" in partial.json()["message"]
    outside = project.new_run(eid, assignments={"lr": 5.0, "depth": 3, "act": "tanh"})
    assert outside.status_code == 400 and "lr" in outside.json()["message"]
    assert project.progress(eid)["total_run_count"] == 1  # nothing half-created

    done = project.run(
        eid,
        assignments={"lr": 0.5, "depth": 2, "act": "relu"},
        values={"acc": {"value": 0.9, "value_stddev": 0.01}},
        state="completed",
    )
    assert done["state"] == "completed" and done["observation"] is not None
    failed = project.run(eid, state="failed")
    assert failed["state"] == "failed" and failed["observation"] is not None
    observations = {o["id"]: o for o in project.observations(eid)}
    assert observations[done["observation"]]["values"] == [
        {"object": "metric_evaluation", "name": "acc", "value": 0.9, "value_stddev": 0.01}
    ]
    assert observations[failed["observation"]]["failed"] is True
    progress = project.progress(eid)
    assert progress["finished_run_count"] == 2 and progress["active_run_count"] == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, ['"name"']),
        ({"name": None}, ["name", "null"]),
        ({"name": ""}, ["name"]),
        ({"name": "x" * 101}, ["name"]),
        ({"name": "r", "colour": 1}, ["colour"]),
        ({"name": "r", "deleted": True}, ["deleted"]),
        ({"name": "r", "suggestion": "1"}, ["suggestion"]),
        ({"name": "r", "state": None}, ["state", "null"]),
        ({"name": "r", "state": "running"}, ["state", "running"]),
        ({"name": "r", "metadata": {"k": {"nested": 1}}}, ["metadata.k"]),
        ({"name": "r", "metadata": []}, ["metadata"]),
        ({"name": "r", "values": {"acc": {"value": "high"}}}, ["values.acc.value"]),
        ({"name": "r", "values": {"acc": 0.5}}, ["values.acc"]),
        ({"name": "r", "values": {"acc": {"value": 1, "value_stddev": -1}}}, ["value_stddev"]),
        ({"name": "r", "assignments": {"lr": [1]}}, ["assignments.lr"]),
        ({"name": "r", "assignments": []}, ["assignments"]),
        ({"name": "r", "favorite": "yes"}, ["favorite"]),
        ({"name": "r", "logs": {"stdout": "text"}}, ["logs.stdout"]),
        ({"name": "r", "model": {"type": 3}}, ["model.type"]),
        ({"name": "r", "source_code": {"content": "x", "branch": "main"}}, ["branch"]),
        ({"name": "r", "assignments_sources": {"s": {"sort": "1"}}}, ["sort"]),
    ],
)
def test_refused_run_creates(project: Project, body: dict[str, Any], words: list[str]) -> None:
    eid = project.experiment()["id"]
    answer = project.api.post(f"/v1/aiexperiments/{eid}/training_runs", json=body)
    assert answer.status_code == 400, answer.text
    for word in words:
        assert word in answer.json()["message"], answer.json()["message"]
    assert project.progress(eid)["total_run_count"] == 0
    assert project.api.ok("GET", f"/v1/experiments/{eid}/suggestions")["count"] == 0


def test_merge_put_and_response_skipping(api: Api, project: Project) -> None:
    eid = project.experiment()["id"]
    run = project.run(eid, metadata={"a": 1, "b": "x"})
    rid = run["id"]
    skipped = project.merge(rid, {"metadata": {"c": 2}}, headers={"X-Response-Content": "skip"})
    assert skipped.status_code == 204 and skipped.content == b""
    merged = project.merged(
        rid,
        {
            "metadata": {"a": None, "d": 3.5},
            "values": {"loss": {"value": 0.25}},
            "assignments": {"batch": 32},
            "datasets": {"mnist": {}},
            "logs": {"stdout": {"content": "y" * 2000}},
            "model": {"type": "cnn"},
            "sys_metadata": {"feature": {"nested": [1, 2]}},
            "favorite": True,
        },
    )
    assert merged["metadata"] == {"b": "x", "c": 2, "d": 3.5}
    assert merged["values"]["loss"] == {
        "object": "metric_evaluation",
        "name": "loss",
        "value": 0.25,
        "value_stddev": None,
    }
    assert merged["assignments"]["batch"] == 32 and "lr" in merged["assignments"]
    assert merged["datasets"] == {"mnist": {}} and merged["model"]["type"] == "cnn"
    assert len(merged["logs"]["stdout"]["content"]) == 1124
    assert merged["sys_metadata"] == {"feature": {"nested": [1, 2]}} and merged["favorite"]
    merged = project.merged(rid, {"values": {"loss": {"value_stddev": 0.5}}, "datasets": None})
    assert merged["values"]["loss"]["value"] == 0.25  # merged into the entry
    assert merged["values"]["loss"]["value_stddev"] == 0.5 and merged["datasets"] == {}
    replaced = api.ok("PUT", f"/v1/training_runs/{rid}", json={"metadata": {"only": 1}})
    assert replaced["metadata"] == {"only": 1} and replaced["values"]["loss"]["value"] == 0.25
    assert api.ok("GET", f"/v1/training_runs/{rid}") == replaced

    for body, words in [
        ({"colour": 1}, ["colour"]),
        ({"name": None}, ["name", "null"]),
        ({"state": None}, ["state", "null"]),
        ({"state": "done"}, ["state", "done"]),
        ({"project": None}, ["project"]),
        ({"project": "other-project"}, ["project", project.id]),
        ({"assignments": {"lr": 0.123}}, ["assignments.lr", "cannot change"]),
        ({"assignments": {"lr": None}}, ["assignments.lr"]),
        ({"values": {"acc": {"value": None}}}, ["values.acc.value"]),
        ([1, 2], ["body"]),
    ]:
        answer = project.merge(rid, body)
        assert answer.status_code == 400, (body, answer.text)
        for word in words:
            assert word in answer.json()["message"], answer.json()["message"]
    wrong_put = api.put(f"/v1/training_runs/{rid}", json={"assignments": {"batch": 1}})
    assert wrong_put.status_code == 400  # replacing drops the suggestion's assignments
    assert api.ok("GET", f"/v1/training_runs/{rid}") == replaced  # unchanged by the 400s


def test_a_run_makes_exactly_one_observation(api: Api, project: Project) -> None:
    eid = project.experiment(
        metrics=[
            {"name": "acc", "objective": "maximize"},
            {"name": "latency", "objective": "minimize", "strategy": "store"},
        ]
    )["id"]
    run = project.run(eid)
    rid = run["id"]
    project.merged(rid, {"values": {"acc": {"value": 0.8}}})
    checkpoint = api.post(
        f"/v1/training_runs/{rid}/checkpoints", json={"values": [{"name": "acc", "value": 0.7}]}
    )
    assert checkpoint.status_code == 200 and checkpoint.json()["should_stop"] is False
    project.merged(rid, {"values": {"latency": {"value": 12, "value_stddev": 1}}})
    project.merged(rid, {"metadata": {"host": "gpu-2"}})
    ended = project.merged(rid, {"state": "completed", "metadata": {"epochs": 3}})
    assert ended["observation"] is not None and ended["finished"] and ended["completed"]
    observation = api.ok("GET", f"/v1/experiments/{eid}/observations/{ended['observation']}")
    assert observation["suggestion"] == run["suggestion"] and observation["failed"] is False
    # The observation carries the run's metadata as the run ended.
    assert observation["metadata"] == {"host": "gpu-2", "epochs": 3}
    assert [(v["name"], v["value"]) for v in observation["values"]] == [
        ("acc", 0.8),
        ("latency", 12),
    ]
    suggestion = api.ok("GET", f"/v1/experiments/{eid}/suggestions/{run['suggestion']}")
    assert suggestion["state"] == "closed"
    later = project.merged(rid, {"state": "failed", "metadata": {"late": 1}})
    assert later["state"] == "failed" and later["observation"] == ended["observation"]
    assert later["completed"] == ended["completed"]
    again = project.merged(rid, {"state": "completed"})
    assert again["observation"] == ended["observation"]
    assert len(project.observations(eid)) == 1
    late_checkpoint = api.post(
        f"/v1/training_runs/{rid}/checkpoints", json={"values": [{"name": "acc", "value": 0.9}]}
    )
    assert late_checkpoint.status_code == 403

    missing = project.run(eid)
    project.merged(missing["id"], {"values": {"acc": {"value": 0.5}}})
    ended = project.merged(missing["id"], {"state": "completed"})
    assert ended["state"] == "completed"  # as the open-source server keeps it
    assert api.ok("GET", f"/v1/experiments/{eid}/observations/{ended['observation']}")["failed"]
    put_failed = project.run(eid, metadata={"host": "gpu-3"})
    body = {"state": "failed", "metadata": {"why": "diverged"}}
    ended = api.ok("PUT", f"/v1/training_runs/{put_failed['id']}", json=body)
    observation = api.ok("GET", f"/v1/experiments/{eid}/observations/{ended['observation']}")
    assert observation["failed"] and observation["metadata"] == {"why": "diverged"}
    assert len(project.observations(eid)) == 3
    assert project.progress(eid)["finished_run_count"] == 3


def test_racing_merges_make_one_observation(server: RunningServer, project: Project) -> None:
    eid = project.experiment(budget=50)["id"]
    runs = [project.run(eid) for _ in range(5)]
    for run in runs:
        project.merged(run["id"], {"values": {"acc": {"value": 0.5}}})
    start = threading.Barrier(40)

    def end(index: int) -> int:
        session = requests.Session()
        session.auth = (server.token, "")
        run = runs[index % len(runs)]
        state = "completed" if index % 3 else "failed"
        start.wait()
        answer = session.request(
            "MERGE", f"{server.url}/v1/training_runs/{run['id']}", json={"state": state}, timeout=60
        )
        return answer.status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(end, range(40)))
    assert statuses == [200] * 40
    observations = project.observations(eid)
    assert sorted(o["suggestion"] for o in observations) == sorted(r["suggestion"] for r in runs)
    for run in runs:
        fetched = project.api.ok("GET", f"/v1/training_runs/{run['id']}")
        assert fetched["observation"] in [o["id"] for o in observations]


def test_project_runs_and_their_checkpoints(api: Api, project: Project) -> None:
    plain = api.ok(
        "POST",
        project.path + "/training_runs",
        json={"name": "plain", "assignments": {"batch": 16}, "metadata": {"k": "v"}},
    )
    assert plain["experiment"] is None and plain["suggestion"] is None
    assert plain["project"] == project.id and plain["assignments"] == {"batch": 16}
    rid = plain["id"]
    first = api.ok(
        "POST",
        f"/v1/training_runs/{rid}/checkpoints",
        json={"values": [{"name": "loss", "value": 0.9}, {"name": "f1", "value": 0.1}]},
    )
    assert first["should_stop"] is False and first["stopping_reasons"] == {} and first["step"] == 1
    unnamed = api.post(f"/v1/training_runs/{rid}/checkpoints", json={"values": [{"value": 1}]})
    assert unnamed.status_code == 400 and "name" in unnamed.json()["message"]
    duplicate = api.post(
        f"/v1/training_runs/{rid}/checkpoints",
        json={"values": [{"name": "a", "value": 1}, {"name": "a", "value": 2}]},
    )
    assert duplicate.status_code == 400
    ended = project.merged(rid, {"state": "completed", "values": {"loss": {"value": 0.2}}})
    assert ended["observation"] is None and ended["completed"] is not None
    assert ended["checkpoint_count"] == 1

    eid = project.experiment()["id"]
    in_experiment = project.run(eid)
    project.merged(in_experiment["id"], {"state": "failed"})
    listed = api.ok("GET", project.path + "/training_runs")
    assert [r["id"] for r in listed["data"]] == [in_experiment["id"], rid]
    only_experiment = api.ok(
        "GET",
        project.path + "/training_runs",
        params={"filters": f'[{{"field":"experiment","operator":"==","value":"{eid}"}}]'},
    )
    assert [r["id"] for r in only_experiment["data"]] == [in_experiment["id"]]
    outside = api.ok(
        "GET",
        project.path + "/training_runs",
        params={"filters": '[{"field":"experiment","operator":"isnull"}]'},
    )
    assert [r["id"] for r in outside["data"]] == [rid]
    by_state = api.ok(
        "GET",
        project.path + "/training_runs",
        params={"filters": '[{"field":"state","operator":"!=","value":"failed"}]'},
    )
    assert [r["id"] for r in by_state["data"]] == [rid]
    for bad in [
        "not json",
        '{"field":"state"}',
        '[{"field":"colour","operator":"==","value":"x"}]',
        '[{"field":"state","operator":"~","value":"x"}]',
        '[{"field":"created","operator":">","value":"soon"}]',
        '[{"field":"state","operator":"==","value":"x","extra":1}]',
    ]:
        answer = api.get(project.path + "/training_runs", params={"filters": bad})
        assert answer.status_code == 400, (bad, answer.text)
        assert "filters" in answer.json()["message"]

    api.ok("DELETE", f"/v1/training_runs/{rid}")
    assert api.get(f"/v1/training_runs/{rid}").status_code == 404
    assert rid not in [r["id"] for r in api.ok("GET", project.path + "/training_runs")["data"]]
    restored = api.ok("PUT", f"/v1/training_runs/{rid}", json={"deleted": False})
    assert restored["deleted"] is False
    missing = api.post(
        f"/v1/clients/{project.client}/projects/nope/training_runs", json={"name": "x"}
    )
    assert missing.status_code == 404


def test_best_training_runs(api: Api, project: Project) -> None:
    eid = project.experiment()["id"]
    values = [0.3, 0.9, 0.6]
    runs = []
    for value in values:
        run = project.run(eid)
        runs.append(
            project.merged(run["id"], {"values": {"acc": {"value": value}}, "state": "completed"})
        )
    failed = project.run(eid)
    project.merged(failed["id"], {"state": "failed"})
    best = api.ok("GET", f"/v1/aiexperiments/{eid}/best_training_runs")
    assert [r["id"] for r in best["data"]] == [runs[1]["id"]] and best["count"] == 1

    two = project.experiment(
        metrics=[
            {"name": "acc", "objective": "maximize"},
            {"name": "cost", "objective": "minimize"},
        ]
    )["id"]
    front = []
    for acc, cost in [(0.9, 5.0), (0.5, 1.0), (0.4, 2.0), (0.7, 3.0)]:
        run = project.run(two)
        ended = project.merged(
            run["id"],
            {"values": {"acc": {"value": acc}, "cost": {"value": cost}}, "state": "completed"},
        )
        if (acc, cost) != (0.4, 2.0):
            front.append(ended["id"])
    page = api.ok("GET", f"/v1/aiexperiments/{two}/best_training_runs", params={"limit": 2})
    assert page["count"] == 3 and len(page["data"]) == 2
    rest = api.ok(
        "GET",
        f"/v1/aiexperiments/{two}/best_training_runs",
        params={"limit": 2, "before": page["paging"]["before"]},
    )
    assert sorted(r["id"] for r in page["data"] + rest["data"]) == sorted(front)
    bad_sort = api.get(f"/v1/aiexperiments/{two}/best_training_runs", params={"sort": "score"})
    assert bad_sort.status_code == 400


def test_budget_overshoot_archive_and_update(api: Api, project: Project) -> None:
    eid = project.experiment(budget=2)["id"]
    runs = [project.run(eid) for _ in range(3)]  # beyond the budget: still a 200
    assert project.progress(eid) == {
        "object": "progress",
        "finished_run_count": 0,
        "active_run_count": 3,
        "total_run_count": 3,
        "remaining_budget": -1,
    }
    api.ok("DELETE", f"/v1/training_runs/{runs[2]['id']}")
    assert project.progress(eid)["remaining_budget"] == 0  # an archived run gives it back
    updated = api.ok("PUT", f"/v1/aiexperiments/{eid}", json={"budget": 5, "name": "more"})
    assert updated["budget"] == 5 and updated["progress"]["remaining_budget"] == 3
    for body in ({"observation_budget": 5}, {"budget": 0}, {"budget": None, "colour": 1}):
        answer = api.put(f"/v1/aiexperiments/{eid}", json=body)
        assert answer.status_code == 400, answer.text
    assert api.ok("GET", f"/v1/aiexperiments/{eid}")["budget"] == 5

    api.ok("DELETE", f"/v1/aiexperiments/{eid}", params={"include_runs": "false"})
    archived = api.ok("GET", f"/v1/aiexperiments/{eid}")
    assert archived["state"] == "deleted" and archived["progress"]["total_run_count"] == 2
    refused = project.new_run(eid)
    assert refused.status_code == 400 and "deleted" in refused.json()["message"]
    ended = project.merged(runs[0]["id"], {"state": "completed"})
    assert ended["observation"] is None  # an archived experiment takes no observations
    assert api.ok("GET", project.path + "/aiexperiments")["count"] == 0
    assert api.ok("GET", project.path + "/aiexperiments", params={"state": "deleted"})["count"] == 1
    restored = api.ok("PUT", f"/v1/aiexperiments/{eid}", json={"state": "active"})
    assert restored["state"] == "active"
    api.ok("DELETE", f"/v1/aiexperiments/{eid}", params={"include_runs": "true"})
    assert api.ok("GET", f"/v1/aiexperiments/{eid}")["progress"]["total_run_count"] == 0
    assert api.get(f"/v1/training_runs/{runs[1]['id']}").status_code == 404


def _session(server: RunningServer) -> requests.Session:
    session = requests.Session()  # its own connection: its own reservation holder
    session.auth = (server.token, "")
    return session


def test_loop_answers_reserve_the_remaining_budget(server: RunningServer, project: Project) -> None:
    eid = project.experiment(budget=3)["id"]
    url = f"{server.url}/v1/aiexperiments/{eid}"
    a, b, c, d = (_session(server) for _ in range(4))
    for session in (a, a, b, c):  # a asks twice on one connection: one reservation
        assert session.get(url, timeout=60).json()["progress"]["remaining_budget"] == 3
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(target=lambda: answers.append(d.get(url, timeout=60).json()))
    started = time.monotonic()
    waiting.start()
    time.sleep(0.5)
    assert not answers  # all 3 runs are reserved: d waits
    for session in (a, b, c):
        created = session.post(f"{url}/training_runs", json={"name": "r"}, timeout=60)
        assert created.status_code == 200
    waiting.join(timeout=30)
    assert answers and answers[0]["progress"]["remaining_budget"] == 0  # the loop ends
    assert time.monotonic() - started < 10

    # A reservation nobody uses lapses; then the budget is handed out again.
    more = project.experiment(budget=1)["id"]
    more_url = f"{server.url}/v1/aiexperiments/{more}"
    a.get(more_url, timeout=60)
    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        with store.write() as session:
            session.execute(
                update(RunReservation)
                .where(RunReservation.experiment_id == int(more))
                .values(expires_at=0.0)
            )
    finally:
        store.dispose()
    started = time.monotonic()
    assert b.get(more_url, timeout=60).json()["progress"]["remaining_budget"] == 1
    assert time.monotonic() - started < 2


def test_a_spent_budget_still_shows_a_dead_owners_run(api: Api, project: Project) -> None:
    """At a spent budget the run a dead agent left open stays open and counted, and its
    suggestion is listed to the agents' lapsed-lease scan once the lease lapses (the agent's
    adoption path, docs/agent.md "AI experiments"); ending it then completes the budget."""
    eid = str(project.experiment(budget=2, parallel_bandwidth=None)["id"])
    done = project.run(eid, metadata={"instance_id": "i-live"})
    project.merged(done["id"], {"state": "completed", "values": {"acc": {"value": 0.5}}})
    lease = time.time() + 3600
    left = project.run(eid, metadata={"instance_id": "i-dead", "lease_expires_at": lease})
    progress = api.ok("GET", f"/v1/aiexperiments/{eid}")["progress"]
    assert progress["remaining_budget"] == 0 and progress["active_run_count"] == 1
    lapsed_by = {"state": "open", "lease_expired_by": str(time.time())}
    listed = api.ok("GET", f"/v1/experiments/{eid}/suggestions", params=lapsed_by)["data"]
    assert listed == []  # its lease is fresh: not an orphan yet
    sid = str(left["suggestion"])
    metadata = {"instance_id": "i-dead", "lease_expires_at": time.time() - 1}
    api.ok("PUT", f"/v1/experiments/{eid}/suggestions/{sid}", json={"metadata": metadata})
    lapsed_by["lease_expired_by"] = str(time.time())
    listed = api.ok("GET", f"/v1/experiments/{eid}/suggestions", params=lapsed_by)["data"]
    assert [str(s["id"]) for s in listed] == [sid]
    found = api.ok("POST", f"/v1/experiments/{eid}/training_runs", json={"suggestion": sid})
    assert found["id"] == left["id"]  # the adopter finds the dead owner's run, not a new one
    project.merged(left["id"], {"state": "completed", "values": {"acc": {"value": 0.7}}})
    progress = api.ok("GET", f"/v1/aiexperiments/{eid}")["progress"]
    assert progress["finished_run_count"] == 2 and progress["active_run_count"] == 0
    assert len(project.observations(eid)) == 2


UPLOAD_SCRIPT = """
import json
import sigopt

sigopt.create_project()
runs = [
    {"name": f"hyperopt {n}", "assignments": {"x": n}, "state": "completed",
     "values": {"loss": {"value": 1.0 / (n + 1)}}}
    for n in range(3)
]
uploaded = sigopt.upload_runs(runs, max_batch_size=2)
with open("plot.png", "wb") as image:
    image.write(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(64))
with sigopt.create_run(name="images") as run:
    run.log_image("plot.png", name="loss curve")  # accepted, not stored
    run.log_metric("loss", 0.5)
print(json.dumps({"uploaded": [r.id for r in uploaded], "images": run.id}))
"""


def test_upload_runs_as_the_official_client_calls_it(
    server: RunningServer, api: Api, tmp_path: Path
) -> None:
    """``sigopt.upload_runs`` (batches of 2 here): every run created in the project, with its
    fields; a batch with one bad run creates none and names it. ``run.log_image`` does not
    break the script (the image is accepted and dropped)."""
    name = f"upload-{uuid.uuid4().hex[:8]}"
    out = run_script(server, name, tmp_path, UPLOAD_SCRIPT)
    ids = out["uploaded"]
    images = api.ok("GET", f"/v1/training_runs/{out['images']}")
    assert images["state"] == "completed" and images["files"] == []
    client = str(api.ok("GET", "/v1/tokens/self")["client"])
    path = f"/v1/clients/{client}/projects/{name}/training_runs"
    listed = {str(r["id"]): r for r in api.ok("GET", path)["data"] if r["id"] in ids}
    assert sorted(listed) == sorted(map(str, ids)) and len(ids) == 3
    for run in listed.values():
        n = run["assignments"]["x"]
        assert run["name"] == f"hyperopt {n}" and run["state"] == "completed"
        assert run["values"]["loss"]["value"] == 1.0 / (n + 1)
        assert run["experiment"] is None and run["project"] == name
    bad = {"runs": [{"name": "fine"}, {"assignments": {}}]}
    answer = api.post(path + "/batch", json=bad)
    assert answer.status_code == 400 and answer.json()["message"].startswith("runs[1]: ")
    assert "name" in answer.json()["message"]
    for body, words in (({"runs": []}, "runs"), ({"runs": {}}, "runs"), ({}, "runs")):
        answer = api.post(path + "/batch", json=body)
        assert answer.status_code == 400 and words in answer.json()["message"], answer.text
    assert len(api.ok("GET", path)["data"]) == 4  # nothing of the refused batches


def test_log_image_refusals(api: Api, project: Project) -> None:
    """A bad image description is a 400 naming the key; another client's or an unknown run 404;
    the upload URL is on this server and takes the bytes (dropped)."""
    run = api.ok("POST", project.path + "/training_runs", json={"name": "r"})
    files = f"/v1/training_runs/{run['id']}/files"
    good = {"content_length": 3, "content_md5": "x", "content_type": "image/png", "filename": "a"}
    for body, word in (
        ({**good, "content_length": "3"}, "content_length"),
        ({k: v for k, v in good.items() if k != "filename"}, "filename"),
        ({**good, "colour": 1}, "colour"),
        ([good], "object"),
    ):
        answer = api.post(files, json=body)
        assert answer.status_code == 400 and word in answer.json()["message"], answer.text
    assert api.post("/v1/training_runs/999999999/files", json=good).status_code == 404
    upload = api.ok("POST", files, json={**good, "name": None})["upload"]
    assert upload["method"] == "PUT" and upload["url"].endswith(files + "/upload")
    sent = requests.put(upload["url"], headers=upload["headers"], data=b"abc", timeout=30)
    assert sent.status_code == 204
    assert requests.put(upload["url"], data=b"abc", timeout=30).status_code == 401
