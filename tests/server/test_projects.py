"""Tokens and projects (sigopt-runs-wire.md §1) against a running server, on SQLite and
PostgreSQL: the token object, project create/fetch/list/update, every refused input, another
client's objects as 404, and the schema the migrations build."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import sigopt
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sigopt.exception import ApiException, ProjectNotFoundException
from sigopt.factory import SigOptFactory

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.models import Base
from tests.server.conftest import Api, expect_api_error
from tests.support.server import RunningServer


def new_project_id() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


def client_of(api: Api) -> str:
    return str(api.ok("GET", "/v1/tokens/self")["client"])


def test_token_self_names_the_client(server: RunningServer, api: Api) -> None:
    token = api.ok("GET", "/v1/tokens/self")
    assert token["object"] == "token" and token["token"] == server.token
    assert isinstance(token["client"], str) and token["client"].isdigit()
    assert token["token_type"] == "client-api" and token["development"] is False
    assert token["all_experiments"] is True and token["permissions"] == "write"
    assert token["experiment"] is None and token["training_run"] is None
    assert requests.get(f"{server.url}/v1/tokens/self", timeout=30).status_code == 401


def test_official_client_creates_and_checks_projects(server: RunningServer) -> None:
    connection = sigopt.Connection(client_token=server.token)
    connection.set_api_url(server.url)
    project_id = new_project_id()
    factory = SigOptFactory(project_id, connection=connection)
    with pytest.raises(ProjectNotFoundException):
        factory.ensure_project_exists()
    created = factory.create_project(name="My project")
    assert created.id == project_id and created.name == "My project"
    client = factory.ensure_project_exists()[0]
    fetched = connection.clients(client).projects(project_id).fetch()
    assert fetched.to_json()["experiment_count"] == 0 and fetched.to_json()["deleted"] is False
    listed = connection.clients(client).projects().fetch().iterate_pages()
    assert project_id in [p.id for p in listed]
    updated = (
        connection.clients(client)
        .projects(project_id)
        .update(name="Renamed", metadata={"team": "ml"})
    )
    assert updated.name == "Renamed" and updated.metadata["team"] == "ml"


def test_project_create_update_and_counts(api: Api) -> None:
    client = client_of(api)
    pid = new_project_id()
    created = api.ok(
        "POST",
        f"/v1/clients/{client}/projects",
        json={"id": pid, "name": "Counted", "metadata": {"owner": "tests"}},
    )
    assert created == {
        "object": "project",
        "id": pid,
        "name": "Counted",
        "client": client,
        "user": None,
        "created": created["created"],
        "updated": created["updated"],
        "metadata": {"owner": "tests"},
        "experiment_count": 0,
        "training_run_count": 0,
        "deleted": False,
    }
    api.ok("POST", f"/v1/clients/{client}/projects/{pid}/training_runs", json={"name": "r"})
    api.ok(
        "POST",
        f"/v1/clients/{client}/projects/{pid}/aiexperiments",
        json={
            "name": "e",
            "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
            "metrics": [{"name": "m"}],
        },
    )
    fetched = api.ok("GET", f"/v1/clients/{client}/projects/{pid}")
    assert fetched["experiment_count"] == 1 and fetched["training_run_count"] == 1
    archived = api.ok("PUT", f"/v1/clients/{client}/projects/{pid}", json={"deleted": True})
    assert archived["deleted"] is True
    listed = api.ok("GET", f"/v1/clients/{client}/projects")["data"]
    assert pid not in [p["id"] for p in listed]
    listed = api.ok("GET", f"/v1/clients/{client}/projects", params={"deleted": "true"})["data"]
    assert pid in [p["id"] for p in listed]
    cleared = api.ok("PUT", f"/v1/clients/{client}/projects/{pid}", json={"metadata": None})
    assert cleared["metadata"] is None and cleared["name"] == "Counted"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "no id"}, ['"id"']),
        ({"id": "ok-id"}, ['"name"']),
        ({"id": "Upper", "name": "n"}, ["id", "Upper", "a-z"]),
        ({"id": "has space", "name": "n"}, ["id", "a-z"]),
        ({"id": "x" * 33, "name": "n"}, ["id", "1 to 32"]),
        ({"id": "", "name": "n"}, ["id"]),
        ({"id": 7, "name": "n"}, ["id", "string"]),
        ({"id": "ok-id", "name": ""}, ["name"]),
        ({"id": "ok-id", "name": "n" * 101}, ["name"]),
        ({"id": "ok-id", "name": "n", "color": "red"}, ["color"]),
        ({"id": "ok-id", "name": "n", "metadata": {"k": [1]}}, ["metadata.k"]),
        ([], ["body"]),
    ],
)
def test_refused_project_creates(api: Api, body: Any, words: list[str]) -> None:
    client = client_of(api)
    before = api.ok("GET", f"/v1/clients/{client}/projects", params={"limit": 0})["count"]
    answer = api.post(f"/v1/clients/{client}/projects", json=body)
    assert answer.status_code == 400, answer.text
    for word in words:
        assert word in answer.json()["message"]
    assert api.ok("GET", f"/v1/clients/{client}/projects", params={"limit": 0})["count"] == before


def test_duplicate_project_is_409_and_official_client_conflict(
    server: RunningServer, api: Api
) -> None:
    client = client_of(api)
    pid = new_project_id()
    api.ok("POST", f"/v1/clients/{client}/projects", json={"id": pid, "name": "a"})
    again = api.post(f"/v1/clients/{client}/projects", json={"id": pid, "name": "b"})
    assert again.status_code == 409 and pid in again.json()["message"]
    connection = sigopt.Connection(client_token=server.token)
    connection.set_api_url(server.url)
    error = expect_api_error(
        409, lambda: connection.clients(client).projects().create(id=pid, name="c")
    )
    assert isinstance(error, ApiException)
    assert api.ok("GET", f"/v1/clients/{client}/projects/{pid}")["name"] == "a"


def test_another_clients_projects_are_not_found(api: Api, other_api: Api) -> None:
    client, other = client_of(api), client_of(other_api)
    assert client != other
    pid = new_project_id()
    api.ok("POST", f"/v1/clients/{client}/projects", json={"id": pid, "name": "mine"})
    # Through the other client's own path: no such project there.
    assert other_api.get(f"/v1/clients/{other}/projects/{pid}").status_code == 404
    # Through my client's path with the other token: that client is not theirs.
    for method, path, body in [
        ("GET", f"/v1/clients/{client}/projects/{pid}", None),
        ("GET", f"/v1/clients/{client}/projects", None),
        ("PUT", f"/v1/clients/{client}/projects/{pid}", {"name": "stolen"}),
        ("POST", f"/v1/clients/{client}/projects", {"id": new_project_id(), "name": "x"}),
        ("GET", f"/v1/clients/{client}/projects/{pid}/training_runs", None),
        ("POST", f"/v1/clients/{client}/projects/{pid}/training_runs", {"name": "x"}),
        ("GET", f"/v1/clients/{client}/projects/{pid}/aiexperiments", None),
    ]:
        answer = other_api.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    # The same id is free in another client.
    other_api.ok("POST", f"/v1/clients/{other}/projects", json={"id": pid, "name": "theirs"})
    assert api.ok("GET", f"/v1/clients/{client}/projects/{pid}")["name"] == "mine"
    assert api.get(f"/v1/clients/{client}/projects/unknown-project").status_code == 404
    assert api.get(f"/v1/clients/{client}/projects/{'x' * 40}").status_code == 404


def test_migrations_build_exactly_the_models(server: RunningServer) -> None:
    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        store.dispose()
    assert differences == []
