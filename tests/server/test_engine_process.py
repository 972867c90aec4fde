"""The engine process (suggestion_server/pool/optimizer_process.py): a served server computes its
engine runs in one child process, replaces a child that dies, and takes it down with it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from suggestion_server.pool.optimizer_process import in_memory
from tests.support.server import RunningServer

DOUBLE_SPEC = {
    "name": "engine process",
    "parameters": [
        {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}},
        {"name": "y", "type": "int", "bounds": {"min": 1, "max": 50}},
    ],
    "metrics": [{"name": "loss", "objective": "minimize"}],
    "observation_budget": 30,
}


def engine_children(pid: int) -> list[int]:
    """Child processes of ``pid`` started by multiprocessing's spawn (the engine process)."""
    # Each thread's children are listed under its own task.
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.update(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    found = []
    for child in sorted(children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_for(condition: str, check: object, timeout_s: float = 20.0) -> None:
    """Poll ``check()`` until true (bounded)."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {condition}")
        time.sleep(0.05)


@pytest.fixture()
def own_server() -> Iterator[RunningServer]:
    srv = RunningServer.start()
    try:
        yield srv
    finally:
        srv.stop()


def post(server: RunningServer, path: str, body: dict[str, object]) -> dict[str, object]:
    response = requests.post(server.url + path, json=body, auth=(server.token, ""), timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def engine_suggestions(server: RunningServer, experiment: str, count: int) -> None:
    """``count`` suggestions with observations, each computed by the engine."""
    for n in range(count):
        suggestion = post(server, f"/v1/experiments/{experiment}/suggestions", {})
        x = suggestion["assignments"]["x"]  # type: ignore[index]
        post(
            server,
            f"/v1/experiments/{experiment}/observations",
            {"suggestion": suggestion["id"], "value": (x - 0.3) ** 2 + n * 1e-3},
        )


def test_engine_runs_compute_in_a_child_process(own_server: RunningServer) -> None:
    server = own_server
    assert server._proc is not None
    experiment = str(post(server, "/v1/experiments", DOUBLE_SPEC)["id"])
    engine_suggestions(server, experiment, 12)  # past the start-up design: the GP's turn
    children = engine_children(server._proc.pid)
    assert len(children) == 1, children
    log = server.log_text()
    assert log.count("source=engine") == 12
    # The engine's own log lines come from the child.
    assert "[engine]" in log and "study built experiment=1" in log


def test_a_dead_engine_process_is_replaced(own_server: RunningServer) -> None:
    server = own_server
    assert server._proc is not None
    experiment = str(post(server, "/v1/experiments", DOUBLE_SPEC)["id"])
    engine_suggestions(server, experiment, 3)
    (first,) = engine_children(server._proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_for("the killed child to be gone", lambda: not alive(first))
    engine_suggestions(server, experiment, 3)  # served: a new child took over
    (second,) = engine_children(server._proc.pid)
    assert second != first
    assert server.log_text().count("source=engine") == 6


def test_the_engine_process_ends_with_the_server() -> None:
    srv = RunningServer.start()
    try:
        assert srv._proc is not None
        wait_for("the engine process to start", lambda: engine_children(srv._proc.pid))
        (child,) = engine_children(srv._proc.pid)
        srv.kill()  # SIGKILL: no shutdown code runs in the server
        wait_for("the orphaned engine process to exit", lambda: not alive(child))
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("url", "memory"),
    [
        ("sqlite://", True),
        ("sqlite:///:memory:", True),
        ("sqlite+pysqlite://", True),
        ("sqlite:////var/lib/optfleet/optfleet.db", False),
        ("postgresql+psycopg://u@db/optfleet", False),
    ],
)
def test_in_memory_databases_keep_the_engine_in_process(url: str, memory: bool) -> None:
    assert in_memory(url) is memory
