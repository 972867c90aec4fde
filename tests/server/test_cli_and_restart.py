"""`optfleet token create`, the database URL rules, and a restart keeping everything."""

from __future__ import annotations

import copy

import pytest
import requests

from optfleet.cli import main as cli_main
from suggestion_server.config import normalize_db_url
from tests.server.conftest import MIXED_SPEC, Api
from tests.support.server import RunningServer


def test_postgres_urls_use_the_psycopg_driver() -> None:
    assert normalize_db_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_several_processes_on_sqlite_get_a_warning() -> None:
    from suggestion_server.__main__ import sqlite_workers_warning

    warning = sqlite_workers_warning("sqlite:////var/lib/optfleet.db", 4)
    assert warning is not None and "--workers 4" in warning and "PostgreSQL" in warning
    assert sqlite_workers_warning("sqlite:////var/lib/optfleet.db", 1) is None
    assert sqlite_workers_warning("postgresql+psycopg://u@db/optfleet", 4) is None


def test_token_create_prints_a_working_token_for_a_separate_client(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["token", "create", "--db", server.db_url, "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 32 and "\n" not in token
    mine = requests.Session()
    mine.auth = (token, "")
    response = mine.post(f"{server.url}/v1/experiments", json=copy.deepcopy(MIXED_SPEC), timeout=30)
    assert response.status_code == 200, response.text
    eid = response.json()["id"]
    assert Api(server).get(f"/v1/experiments/{eid}").status_code == 404
    assert mine.get(f"{server.url}/v1/experiments", timeout=30).json()["count"] == 1


def test_restart_keeps_experiments_suggestions_and_observations(server: RunningServer) -> None:
    api = Api(server)
    eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(MIXED_SPEC))["id"]
    sid = api.ok(
        "POST", f"/v1/experiments/{eid}/suggestions", json={"metadata": {"instance_id": "i-1"}}
    )["id"]
    open_one = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})["id"]
    api.ok("POST", f"/v1/experiments/{eid}/observations", json={"suggestion": sid, "value": 0.4})
    server.kill()
    server.restart()  # migrations run again (no-op) and the bootstrap token is re-registered
    progress = api.ok("GET", f"/v1/experiments/{eid}")["progress"]
    assert progress["observation_count"] == 1 and progress["open_suggestion_count"] == 1
    listed = api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"state": "open"})
    assert [s["id"] for s in listed["data"]] == [open_one]
    fresh = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    assert int(fresh["id"]) > int(open_one)
