"""The hot-write layer (suggestion_server/http/hot_writes.py) answers like the FastAPI routes.

Two servers on loopback over two fresh SQLite files with the same frozen clock, one with the
layer and one without, get the same sequence of requests: valid writes, retries, conflicts and
every kind of bad input. Ids and timestamps then coincide, so the answers must be identical,
status, headers that matter and body byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from suggestion_server.app import create_app
from suggestion_server.http.hot_writes import HotWrites
from suggestion_server.storage.tokens import register_token
from tests.server.conftest import INT_GRID_SPEC
from tests.support.loopback import LoopbackApp

TOKEN = "hot-token"
OTHER_TOKEN = "other-token"
FROZEN_NOW = 1_767_225_600.0


class LoopbackServer(LoopbackApp):
    """``create_app`` served by uvicorn in a thread of the test process."""

    def __init__(self, db_path: Path, hot_writes: bool) -> None:
        app = create_app(
            f"sqlite:///{db_path}",
            bootstrap_token=TOKEN,
            clock=lambda: FROZEN_NOW,
            hot_writes=hot_writes,
        )
        register_token(app.state.context.store, OTHER_TOKEN, name="other")
        super().__init__(app)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopbackServer, ...]]:
    root = tmp_path_factory.mktemp("hot-writes")
    with (
        LoopbackServer(root / "hot.db", hot_writes=True) as hot,
        LoopbackServer(root / "routes.db", hot_writes=False) as routes,
    ):
        yield hot, routes


def answer(response: requests.Response) -> tuple[int, str | None, bytes]:
    return response.status_code, response.headers.get("content-type"), response.content


def both(
    servers: tuple[LoopbackServer, ...],
    method: str,
    path: str,
    token: str | None = TOKEN,
    **kwargs: Any,
) -> tuple[int, str | None, bytes]:
    """The same request to both servers; their answers must be identical. Returns it."""
    answers = []
    for server in servers:
        auth = (token, "") if token is not None else None
        response = requests.request(method, server.url + path, auth=auth, timeout=30, **kwargs)
        answers.append(answer(response))
    assert answers[0] == answers[1], f"{method} {path}: hot layer {answers[0]} != {answers[1]}"
    return answers[0]


def test_layer_is_installed(servers: tuple[LoopbackServer, ...]) -> None:
    hot, routes = servers
    assert any(m.cls is HotWrites for m in hot.app.user_middleware)
    assert not any(m.cls is HotWrites for m in routes.app.user_middleware)


def test_observations_and_metadata_answer_alike(servers: tuple[LoopbackServer, ...]) -> None:
    status, _, body = both(servers, "POST", "/v1/experiments", json=INT_GRID_SPEC)
    assert status == 200, body
    exp = "/v1/experiments/1"
    for n in (1, 2, 3):  # given assignments: sampled ones would differ between the servers
        given = {"assignments": {"x": n, "y": n}}
        assert both(servers, "POST", f"{exp}/suggestions", json=given)[0] == 200
    obs = f"{exp}/observations"
    sug = f"{exp}/suggestions"

    valid = {"suggestion": "1", "values": [{"name": "score", "value": 0.5}], "metadata": {"i": 1}}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        # Lease renewals: replace, clear, leave unchanged, fields, 204.
        ("PUT", f"{sug}/2", {"json": {"metadata": {"instance_id": "i-0abc", "lease": 5}}}),
        ("PUT", f"{sug}/2", {"json": {"metadata": None}}),
        ("PUT", f"{sug}/2", {"json": {}}),
        ("PUT", f"{sug}/2?fields=id,metadata", {"json": {"metadata": {"a": "b"}}}),
        (
            "PUT",
            f"{sug}/2",
            {"json": {"metadata": {"a": 1}}, "headers": {"X-Response-Content": "skip"}},
        ),
        # Observations: for a suggestion, its identical retry, a conflicting one, manual ones.
        ("POST", obs, {"json": valid}),
        ("POST", obs, {"json": valid}),
        ("POST", obs, {"json": {**valid, "metadata": {"i": 2}}}),
        ("POST", obs, {"json": {"assignments": {"x": 2, "y": 3}, "value": 1.5}}),
        ("POST", obs, {"json": {"suggestion": "3", "failed": True, "metadata": {"why": "oom"}}}),
        (
            "POST",
            f"{obs}?fields=id,value",
            {"json": {"assignments": {"x": 5, "y": 2}, "value": 2}},
        ),
        ("POST", f"{obs}?fields=nope", {"json": {"assignments": {"x": 6, "y": 2}, "value": 2}}),
        # Bad input: bodies.
        ("POST", obs, {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", obs, {"data": b'{"assignments": {"x": NaN, "y": 1}, "value": 1}'}),
        ("POST", obs, {"data": b'{"assignments": {"x": 1, "y": 1}, "value": 1e999}'}),
        ("POST", obs, {"json": ["not", "an", "object"]}),
        ("POST", obs, {"json": {"assignments": {"x": 1, "y": 1}, "value": 1, "extra": 1}}),
        ("POST", obs, {"json": {"assignments": {"x": 12, "y": 1}, "value": 1}}),
        ("POST", obs, {"json": {"assignments": {"x": 1, "y": 1}, "value": "high"}}),
        ("POST", obs, {"json": {"suggestion": "2", "assignments": {"x": 1, "y": 1}, "value": 1}}),
        ("POST", obs, {"json": {"suggestion": "999", "value": 1}}),
        ("POST", obs, {"json": {"assignments": {"x": 1, "y": 1}, "value": "a\u0000b"}}),
        ("POST", obs, {"data": b"x" * (1024 * 1024 + 1)}),
        ("PUT", f"{sug}/2", {"json": {"metadata": "not an object"}}),
        ("PUT", f"{sug}/2", {"json": {"metadata": {"k": {"nested": 1}}}}),
        ("PUT", f"{sug}/2", {"json": {"state": "closed"}}),
        ("PUT", f"{sug}/2", {"data": b"[1,2"}),
        # Suggestions: given assignments (sampled ones would differ), fields, bad input.
        ("POST", sug, {"json": {"assignments": {"x": 4, "y": 1}, "metadata": {"w": "i-1"}}}),
        ("POST", f"{sug}?fields=id,assignments", {"json": {"assignments": {"x": 4, "y": 2}}}),
        ("POST", sug, {"json": {"assignments": {"x": 99, "y": 1}}}),
        ("POST", sug, {"json": {"assignments": {"x": 1}}}),
        ("POST", sug, {"json": {"assignments": {"x": 1, "y": 1}, "extra": True}}),
        ("POST", sug, {"json": {"metadata": "not an object"}}),
        ("POST", sug, {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", sug, {"json": ["a", "list"]}),
        ("POST", "/v1/experiments/999/suggestions", {"json": {}}),
        ("POST", "/v1/experiments/99999999999999999999999/suggestions", {"json": {}}),
        # Bad input: ids, query strings.
        ("POST", "/v1/experiments/999/observations", {"json": valid}),
        ("POST", "/v1/experiments/99999999999999999999999/observations", {"json": valid}),
        ("PUT", f"{sug}/999", {"json": {"metadata": {}}}),
        ("PUT", f"{sug}/0", {"json": {"metadata": {}}}),
        ("PUT", "/v1/experiments/999/suggestions/2", {"json": {"metadata": {}}}),
        ("PUT", f"{sug}/abc", {"json": {"metadata": {}}}),
        ("POST", f"{obs}/", {"json": valid}),
        ("POST", f"{obs}?fields=id%00", {"json": valid}),
    ]
    for method, path, kwargs in cases:
        both(servers, method, path, **kwargs)


def test_authentication_answers_alike(servers: tuple[LoopbackServer, ...]) -> None:
    both(servers, "POST", "/v1/experiments", json={**INT_GRID_SPEC, "name": "auth"})
    path = "/v1/experiments/1/observations"
    body = {"json": {"assignments": {"x": 3, "y": 1}, "value": 1.0}}
    assert both(servers, "POST", path, token=None, **body)[0] == 401
    assert both(servers, "POST", path, token="revoked-or-unknown", **body)[0] == 403
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert both(servers, "POST", path, token=None, headers=bearer, **body)[0] == 400
    # Another client's experiment and suggestion do not exist for it.
    assert both(servers, "POST", path, token=OTHER_TOKEN, **body)[0] == 404
    metadata = {"json": {"metadata": {"owner": "other"}}}
    put = "/v1/experiments/1/suggestions/1"
    assert both(servers, "PUT", put, token=OTHER_TOKEN, **metadata)[0] == 404
    create = {"json": {"assignments": {"x": 1, "y": 1}}}
    assert both(servers, "POST", "/v1/experiments/1/suggestions", token=None, **create)[0] == 401
    assert (
        both(servers, "POST", "/v1/experiments/1/suggestions", token=OTHER_TOKEN, **create)[0]
        == 404
    )
