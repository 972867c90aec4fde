"""Fixtures of the server suite: a real server subprocess per module and backend, the official
client pointed at it, and raw HTTP helpers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import sigopt
from sigopt.exception import ApiException
from sigopt.ratelimit import failed_status_rate_limit

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.tokens import create_token
from tests.support.server import RunningServer

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def start_server(request: pytest.FixtureRequest, backend: str) -> RunningServer:
    """A server on SQLite (temp file) or on a fresh database of the test PostgreSQL cluster."""
    db_url = None
    if backend == "postgres":
        db_url = request.getfixturevalue("pg_cluster").create_database()
    return RunningServer.start(db_url=db_url, token=f"tok-{uuid.uuid4().hex}")


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One running server per backend for the whole suite (starting one takes seconds); tests
    stay independent by each using their own experiments."""
    running = start_server(request, request.param)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _no_client_backoff() -> Iterator[None]:
    """The official client sleeps after 5 consecutive non-2xx responses; tests expect errors."""
    failed_status_rate_limit.clear()
    yield
    failed_status_rate_limit.clear()


@pytest.fixture
def conn(server: RunningServer) -> sigopt.Connection:
    """The official client, authenticated with the server's bootstrap token."""
    connection = sigopt.Connection(client_token=server.token)
    connection.set_api_url(server.url)
    return connection


class Api:
    """Raw HTTP against the server, authenticated unless told otherwise."""

    def __init__(self, server: RunningServer) -> None:
        self.base = server.url
        self.session = requests.Session()
        self.session.auth = (server.token, "")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def api(server: RunningServer) -> Api:
    """Raw HTTP helper for things the official client cannot express."""
    return Api(server)


@pytest.fixture
def other_api(server: RunningServer) -> Api:
    """Raw HTTP as a second client: its own token, registered in the server's database."""
    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        token = create_token(store, name=f"other-{uuid.uuid4().hex[:6]}")
    finally:
        store.dispose()
    other = Api(server)
    other.session.auth = (token, "")
    return other


INT_GRID_SPEC: dict[str, Any] = {
    "name": "grid 10x10",
    "parameters": [
        {"name": "x", "type": "int", "bounds": {"min": 0, "max": 9}},
        {"name": "y", "type": "int", "bounds": {"min": 0, "max": 9}},
    ],
    "metrics": [{"name": "score", "objective": "maximize"}],
    "observation_budget": 100,
    "parallel_bandwidth": 32,
}

MIXED_SPEC: dict[str, Any] = {
    "name": "mixed",
    "parameters": [
        {
            "name": "lr",
            "type": "double",
            "bounds": {"min": 1e-5, "max": 1.0},
            "transformation": "log",
        },
        {"name": "layers", "type": "int", "bounds": {"min": 1, "max": 8}},
        {"name": "act", "type": "categorical", "categorical_values": ["relu", "tanh", "gelu"]},
    ],
    "metrics": [{"name": "acc", "objective": "maximize"}],
    "observation_budget": 20,
    "parallel_bandwidth": 4,
    "metadata": {"owner": "tests"},
}


def expect_api_error(status: int, call: Callable[[], Any]) -> ApiException:
    """Run ``call``; it must raise ApiException with ``status``."""
    with pytest.raises(ApiException) as info:
        call()
    failed_status_rate_limit.clear()
    assert info.value.status_code == status, info.value.to_json()
    return info.value
