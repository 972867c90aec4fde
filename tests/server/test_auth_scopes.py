"""Experiment-scoped tokens (issue 24): every route of the app by every token scope.

The routes are enumerated from the FastAPI app itself, so a new route cannot be forgotten: it
is either public (listed below) or checked with an operator token (never refused) and with a
token scoped to experiment A, aimed at A's objects, at another experiment of the same client
(B), at another client's experiment (C) and at ids that do not exist. The expected rights are
stated here independently of the server's table (``token_scope.py``): a scoped token reads
its experiment and creates and updates what lies under it, except the experiment itself and
its queue; nothing else, and never a delete.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from optfleet.cli import main as cli_main
from suggestion_server.app import create_app
from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.tokens import (
    Grant,
    create_token,
    list_tokens,
    resolve_token,
    revoke_token,
)
from tests.server.conftest import Api
from tests.support.server import RunningServer

FASTAPI_DOCS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
# Routes that ask for no token (the page's sign-in and assets, health, the API's own docs).
PUBLIC = {
    ("GET", "/health"),
    ("HEAD", "/health"),
    ("POST", "/health"),
    *((method, path) for method in ("GET", "HEAD") for path in FASTAPI_DOCS),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("POST", "/signout"),
    ("GET", "/web/static/{name}"),
}
ONE_THING = (
    "/v1/experiments/{experiment_id}",
    "/v1/aiexperiments/{experiment_id}",
    "/v1/training_runs/{run_id}",
    "/experiments/{experiment_id}",
)
SPEC = {
    "name": "scopes",
    "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    "metrics": [{"name": "acc", "objective": "maximize"}],
    "observation_budget": 10,
}


def scoped_may(method: str, template: str) -> bool:
    """What a token scoped to one experiment may do, stated from the issue."""
    if (method, template) == ("GET", "/v1/tokens/self"):
        return True
    if method not in ("GET", "POST", "PUT", "MERGE") or not template.startswith(ONE_THING):
        return False
    if method == "GET":
        return True
    # Writes: under the experiment, except the experiment itself and its queue (the operator's).
    return template not in ONE_THING[:2] and "/queued_suggestions" not in template


def app_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves."""

    def walk(routes: list[Any]) -> Iterator[tuple[str, str]]:
        for route in routes:
            if hasattr(route, "path"):
                for method in sorted(route.methods or ()):
                    yield method, route.path
            else:  # FastAPI's included router
                yield from walk(list(route.original_router.routes))

    with tempfile.TemporaryDirectory() as directory:
        app = create_app(f"sqlite:///{directory}/routes.db")
        try:
            found = sorted(set(walk(list(app.routes))))
            documented = set(app.openapi()["paths"])
        finally:
            app.state.context.pool.shutdown()
            app.state.context.store.dispose()
    assert documented <= {path for _, path in found}
    return found


ROUTES = list(app_routes())


@dataclass
class Target:
    """Path parameter values naming one experiment's objects."""

    values: dict[str, str]

    def path(self, template: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: self.value(m.group(1)), template)

    def value(self, name: str) -> str:
        """A parameter's value; a name a new route brings in gets the project or an id."""
        if name in self.values:
            return self.values[name]
        return self.values["project"] if "project" in name else self.values["experiment_id"]


def objects_of(api: Api, client: str, project: str) -> Target:
    """An experiment with a suggestion, an observation, a queued suggestion, a training run
    with a checkpoint; their ids as path parameters."""
    eid = str(api.ok("POST", "/v1/experiments", json=SPEC)["id"])
    base = f"/v1/experiments/{eid}"
    first = api.ok("POST", f"{base}/suggestions", json={})["id"]
    observation = api.ok(
        "POST", f"{base}/observations", json={"suggestion": first, "values": [{"value": 1.0}]}
    )["id"]
    queued = api.ok("POST", f"{base}/queued_suggestions", json={"assignments": {"x": 0.5}})["id"]
    second = api.ok("POST", f"{base}/suggestions", json={})["id"]
    run = api.ok("POST", f"{base}/training_runs", json={"suggestion": second})["id"]
    checkpoint = api.ok(
        "POST",
        f"{base}/training_runs/{run}/checkpoints",
        json={"values": [{"name": "acc", "value": 0.5}]},
    )["id"]
    return Target(
        {
            "experiment_id": eid,
            "suggestion_id": str(second),
            "observation_id": str(observation),
            "queued_id": str(queued),
            "run_id": str(run),
            "checkpoint_id": str(checkpoint),
            "client": client,
            "project": project,
            "name": "app.js",
        }
    )


@dataclass
class World:
    operator: Api
    scoped: Api
    scoped_token: str
    mine: Target
    same_client: Target
    other_client: Target
    missing: Target


def token_api(server: RunningServer, token: str) -> Api:
    api = Api(server)
    api.session.auth = (token, "")
    return api


@pytest.fixture
def world(server: RunningServer, api: Api, other_api: Api) -> Iterator[World]:
    client = str(api.ok("GET", "/v1/tokens/self")["client"])
    project = f"p-{uuid.uuid4().hex[:12]}"
    api.ok("POST", f"/v1/clients/{client}/projects", json={"id": project, "name": "scopes"})
    mine = objects_of(api, client, project)
    same_client = objects_of(api, client, project)
    other = str(other_api.ok("GET", "/v1/tokens/self")["client"])
    other_project = f"p-{uuid.uuid4().hex[:12]}"
    other_api.ok("POST", f"/v1/clients/{other}/projects", json={"id": other_project, "name": "o"})
    other_client = objects_of(other_api, other, other_project)
    missing = Target({key: "987654321" for key in mine.values} | {"project": "p-missing"})
    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        token = create_token(store, "instance", int(mine.values["experiment_id"]))
        # A token of each target's experiment for the token routes (rotating it harms nobody).
        for target in (mine, same_client, other_client):
            spare = create_token(store, "spare", int(target.values["experiment_id"]))
            found = resolve_token(store, spare)
            assert isinstance(found, Grant)
            target.values["token_id"] = str(found.token_id)
    finally:
        store.dispose()
    yield World(api, token_api(server, token), token, mine, same_client, other_client, missing)


def send(api: Api, method: str, path: str) -> requests.Response:
    body = None if method in ("GET", "HEAD", "DELETE") else {}
    return api.request(method, path, json=body, headers={"X-Response-Content": "skip"})


def is_scope_refusal(response: requests.Response) -> bool:
    return response.status_code == 403 and "scoped to experiment" in response.text


def test_every_route_by_every_scope(server: RunningServer, world: World) -> None:
    refused_bodies: set[str] = set()
    wrong: list[str] = []
    checked = {"forbidden": 0, "allowed": 0}
    for method, template in ROUTES:
        if (method, template) in PUBLIC:
            continue
        allowed = scoped_may(method, template)
        targets = [world.mine]
        if "{" in template:
            targets += [world.same_client, world.other_client, world.missing]
        for target in targets:
            mine = target is world.mine
            # /v1/tokens/self names no experiment: every scope may read its own token.
            expect_allowed = allowed and (mine or template == "/v1/tokens/self")
            response = send(world.scoped, method, target.path(template))
            refused = is_scope_refusal(response)
            checked["allowed" if expect_allowed else "forbidden"] += 1
            if refused == expect_allowed or (expect_allowed and response.status_code in (401, 403)):
                wrong.append(f"scoped {method} {target.path(template)}: {response.status_code}")
            if refused:
                refused_bodies.add(response.text)
    for method, template in ROUTES:
        if (method, template) in PUBLIC or method == "DELETE":
            continue
        response = send(world.operator, method, world.same_client.path(template))
        if response.status_code in (401, 403):
            wrong.append(f"operator {method} {template}: {response.status_code} {response.text}")
    # Deletes last, with the operator token, on the same client's other experiment.
    for method, template in ROUTES:
        if method == "DELETE":
            response = send(world.operator, method, world.same_client.path(template))
            if response.status_code in (401, 403):
                wrong.append(f"operator DELETE {template}: {response.status_code}")
    assert wrong == [], f"{len(wrong)} wrong of {checked}"
    assert checked["forbidden"] > 100 and checked["allowed"] > 30, checked
    # One refusal for everything: nothing tells another experiment from a missing one.
    assert len(refused_bodies) == 1, refused_bodies


def test_scoped_token_shows_its_scope_and_cannot_sign_in(
    server: RunningServer, world: World
) -> None:
    token = world.scoped.ok("GET", "/v1/tokens/self")
    assert token["all_experiments"] is False
    assert token["experiment"] == world.mine.values["experiment_id"]
    signin = requests.post(
        f"{server.url}/signin",
        data={"token": world.scoped_token},
        allow_redirects=False,
        timeout=30,
    )
    assert signin.status_code == 403
    operator = world.operator.ok("GET", "/v1/tokens/self")
    assert operator["all_experiments"] is True and operator["experiment"] is None


def test_revoked_token_is_refused(server: RunningServer, api: Api) -> None:
    eid = int(api.ok("POST", "/v1/experiments", json=SPEC)["id"])
    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        token = create_token(store, "to revoke", eid)
        # The newest token scoped to eid; never used before, so no server process caches it.
        token_id = max(info.id for info in list_tokens(store) if info.experiment_id == eid)
        revoked = revoke_token(store, token_id)
        assert revoked is not None and revoked.scope == f"experiment {eid}"
        assert revoke_token(store, token_id) is None
    finally:
        store.dispose()
    response = token_api(server, token).get(f"/v1/experiments/{eid}")
    assert response.status_code == 403
    assert response.json()["token_status"] == "revoked"


def test_token_cli_create_list_show_revoke(
    server: RunningServer, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", server.db_url]
    eid = str(api.ok("POST", "/v1/experiments", json=SPEC)["id"])
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert cli_main(["token", "create", *db, "--experiment", eid, "--name", name]) == 0
    token = capsys.readouterr().out.strip()
    scoped = token_api(server, token)
    assert scoped.get(f"/v1/experiments/{eid}").status_code == 200
    assert is_scope_refusal(scoped.post("/v1/experiments", json=SPEC))
    assert cli_main(["token", "list", *db]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if f"\t{name}\t" in line]
    assert len(listed) == 1 and f"\texperiment {eid}\t" in listed[0]
    assert token not in listed[0]  # only the hash is stored
    token_id = listed[0].split("\t")[0]
    assert cli_main(["token", "show", *db, token_id]) == 0
    assert capsys.readouterr().out.strip() == listed[0]
    assert cli_main(["token", "revoke", *db, token_id]) == 0
    assert capsys.readouterr().out.strip() == f"revoked {listed[0]}"
    assert cli_main(["token", "show", *db, token_id]) == 2
    assert f"no token with id {token_id}" in capsys.readouterr().err
    assert cli_main(["token", "create", *db, "--experiment", "987654321"]) == 2
    assert "--experiment 987654321: no such experiment" in capsys.readouterr().err
