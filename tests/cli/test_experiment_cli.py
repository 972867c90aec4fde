"""`optfleet experiment create|list|show` against a running server, checked with `sigopt`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigopt import Connection

from optfleet.api_client import SigOptClient
from tests.cli.conftest import REPO, run_cli
from tests.support.server import RunningServer

EXAMPLE = REPO / "examples" / "experiment.yaml"
ONE_PARAM = "parameters:\n  - {name: a, type: double, bounds: {min: 0, max: 1}}\n"


def api_env(server: RunningServer) -> dict[str, str]:
    return {"SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": server.token}


def official_client(server: RunningServer) -> Connection:
    conn = Connection(client_token=server.token)
    conn.set_api_url(server.url)
    return conn


def test_create_from_the_example_prints_an_id_the_official_client_can_read(
    server: RunningServer,
) -> None:
    result = run_cli(
        "experiment", "create", "--file", str(EXAMPLE), env=api_env(server), process=True
    )
    assert result.returncode == 0, result.stderr
    experiment_id = result.stdout.strip()
    assert experiment_id.isdigit()
    assert f"experiment_id={experiment_id}" in result.stderr

    fetched = official_client(server).experiments(experiment_id).fetch()
    assert fetched.name == "hartmann6-example"
    assert sorted(p.name for p in fetched.parameters) == ["x1", "x2", "x3", "x4", "x5", "x6"]
    assert fetched.metrics[0].objective == "minimize"
    assert fetched.observation_budget == 40
    assert fetched.parallel_bandwidth == 4
    assert fetched.metadata["project"] == "optfleet-example"


def test_create_from_json_with_the_budget_alias_and_flags_instead_of_env(
    server: RunningServer, tmp_path: Path
) -> None:
    spec = {
        "name": "json-example",
        "parameters": [
            {
                "name": "lr",
                "type": "double",
                "bounds": {"min": 1e-5, "max": 1e-1},
                "transformation": "log",
            },
            {"name": "layers", "type": "int", "bounds": {"min": 1, "max": 8}},
            {"name": "optimizer", "type": "categorical", "categorical_values": ["adam", "sgd"]},
        ],
        "metrics": ["accuracy"],
        "budget": 12,
    }
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(spec))
    result = run_cli(
        "experiment",
        "create",
        "--file",
        str(path),
        "--json",
        "--api-url",
        server.url + "/",
        "--api-token",
        server.token,
    )
    assert result.returncode == 0, result.stderr
    created = result.json()
    assert created["observation_budget"] == 12
    assert {p["name"]: p["type"] for p in created["parameters"]} == {
        "layers": "int",
        "lr": "double",
        "optimizer": "categorical",
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "name: x\nparameters:\n  - {name: a, type: double, bounds: {min: one, max: 2}}\n",
            "parameters[0].bounds.min: expected a finite number, got 'one'",
        ),
        (
            "name: x\nparameters:\n  - {name: a, type: double, bounds: {min: 3, max: 2}}\n",
            "parameters[0].bounds: min (3) must be less than max (2)",
        ),
        (
            "name: x\nparameters:\n  - {name: a, type: int, bounds: {min: 0.5, max: 2}}\n",
            "parameters[0].bounds.min: expected an integer, got 0.5",
        ),
        (
            "name: x\nparameters:\n  - {name: c, type: categorical, categorical_values: [a]}\n",
            "parameters[0].categorical_values: expected a list of at least 2 names",
        ),
        ("name: x\nparameters: []\n", "parameters: expected a non-empty list"),
        (
            "parameters:\n  - {name: a, type: double, bounds: {min: 0, max: 1}}\n",
            "name: expected a string of 1-100 characters, got None",
        ),
        (
            "name: x\nbudgett: 3\n" + ONE_PARAM,
            "budgett: unknown field",
        ),
        (
            "name: x\nobservation_budget: 0\n" + ONE_PARAM,
            "observation_budget: expected a positive integer, got 0",
        ),
        (
            "name: x\nmetrics: [{name: m, objective: biggest}]\n"
            "parameters:\n  - {name: a, type: double, bounds: {min: 0, max: 1}}\n",
            "metrics[0].objective: expected maximize or minimize, got 'biggest'",
        ),
        (
            "name: x\nmetadata: {tags: [1, 2]}\n" + ONE_PARAM,
            "metadata.tags: expected a string or a number",
        ),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_files_are_rejected_naming_the_field_and_nothing_is_created(
    server: RunningServer, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    before = run_cli("experiment", "list", "--json", env=api_env(server)).json()
    result = run_cli("experiment", "create", "--file", str(path), env=api_env(server))
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(run_cli("experiment", "list", "--json", env=api_env(server)).json()) == len(before)


def test_missing_token_and_unreachable_api_are_clear_errors(tmp_path: Path) -> None:
    no_token = run_cli("experiment", "list", env={"SIGOPT_API_URL": "http://127.0.0.1:9"})
    assert no_token.returncode == 1
    assert "SIGOPT_API_TOKEN" in no_token.stderr
    unreachable = run_cli(
        "experiment",
        "list",
        env={"SIGOPT_API_URL": "http://127.0.0.1:9", "SIGOPT_API_TOKEN": "secret-value"},
    )
    assert unreachable.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in unreachable.stderr
    assert "secret-value" not in unreachable.stderr


def test_list_and_show_report_progress_best_and_open_suggestions_by_instance(
    server: RunningServer,
) -> None:
    created = run_cli("experiment", "create", "--file", str(EXAMPLE), env=api_env(server))
    experiment_id = created.stdout.strip()
    conn = official_client(server)
    suggestions = conn.experiments(experiment_id).suggestions()
    done = suggestions.create(metadata={"instance_id": "i-0aaa"})
    conn.experiments(experiment_id).observations().create(
        suggestion=done.id,
        values=[{"name": "hartmann6", "value": -1.5}],
        metadata={"instance_id": "i-0aaa"},
    )
    open_a = suggestions.create(metadata={"instance_id": "i-0aaa"})
    open_b1 = suggestions.create(metadata={"instance_id": "i-0bbb"})
    open_b2 = suggestions.create(metadata={"instance_id": "i-0bbb"})
    untagged = suggestions.create()

    listed = run_cli("experiment", "list", "--json", env=api_env(server))
    assert listed.returncode == 0, listed.stderr
    assert experiment_id in [e["id"] for e in listed.json()]

    shown = run_cli("experiment", "show", experiment_id, "--json", env=api_env(server))
    assert shown.returncode == 0, shown.stderr
    report = shown.json()
    assert report["experiment"]["progress"]["observation_count"] == 1
    by_instance = {
        k: sorted(s["id"] for s in v) for k, v in report["open_suggestions_by_instance"].items()
    }
    assert by_instance == {
        "i-0aaa": [open_a.id],
        "i-0bbb": sorted([open_b1.id, open_b2.id]),
        "(no instance_id)": [untagged.id],
    }
    assert report["best_assignments"][0]["assignments"] == dict(done.assignments)

    table = run_cli("experiment", "show", experiment_id, env=api_env(server), process=True)
    assert table.returncode == 0, table.stderr
    assert "i-0bbb" in table.stdout and "open suggestions by instance" in table.stdout


def test_show_of_an_unknown_experiment_is_a_404_message(server: RunningServer) -> None:
    result = run_cli("experiment", "show", "999999", env=api_env(server))
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr


def test_the_client_follows_paging_markers_to_the_last_page(server: RunningServer) -> None:
    client = SigOptClient(server.url, server.token, page_size=2)
    experiment = client.create_experiment(
        {
            "name": "paging",
            "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        }
    )
    created = [
        client.create_suggestion(experiment["id"], {"instance_id": f"i-{n}"})["id"]
        for n in range(5)
    ]
    listed = client.open_suggestions(experiment["id"])
    assert [s["id"] for s in listed] == list(reversed(created))  # newest first, no repeats
    assert client.open_suggestion_count(experiment["id"]) == 5
    client.close()
