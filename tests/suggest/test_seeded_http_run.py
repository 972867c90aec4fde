"""The server's --seed makes a whole HTTP run repeatable: the same fleet against two fresh
servers with the same seed gets the same suggestions in the same order (another seed: others)."""

from __future__ import annotations

import heapq
import math
import random

import pytest

from benchmarks._api import Api
from tests.support import server as server_support
from tests.support.server import RunningServer

TOKEN = "seeded-run-token"
BUDGET, WORKERS = 16, 4


def _branin(a: dict[str, float]) -> float:
    x, y = float(a["x"]), float(a["y"])
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def _fleet_run(seed: int, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """An asynchronous fleet of 4 (durations from a fixed seed) through the HTTP API of a fresh
    server started with ``--seed``."""
    command = server_support.server_command
    monkeypatch.setattr(
        server_support, "server_command", lambda *a: [*command(*a), "--seed", str(seed)]
    )
    with RunningServer.start(token=TOKEN) as server:
        monkeypatch.undo()
        api = Api(server.url, TOKEN)
        body = {
            "name": "seeded",
            "parameters": [
                {"name": "x", "type": "double", "bounds": {"min": -5, "max": 10}},
                {"name": "y", "type": "double", "bounds": {"min": 0, "max": 15}},
            ],
            "metrics": [{"name": "loss", "objective": "minimize"}],
        }
        experiment = api.call("POST", "/experiments", body)["id"]
        durations = random.Random(0)
        running: list[tuple[float, int, str, dict[str, float]]] = []
        handed: list[tuple[float, float]] = []

        def ask(now: float) -> None:
            suggestion = api.call("POST", f"/experiments/{experiment}/suggestions", {})
            a = suggestion["assignments"]
            handed.append((a["x"], a["y"]))
            heapq.heappush(
                running, (now + durations.uniform(0.5, 1.5), len(handed), suggestion["id"], a)
            )

        for _ in range(WORKERS):
            ask(0.0)
        while running:
            now, _, sid, a = heapq.heappop(running)
            observation = {"suggestion": sid, "values": [{"name": "loss", "value": _branin(a)}]}
            api.call("POST", f"/experiments/{experiment}/observations", observation)
            if len(handed) < BUDGET:
                ask(now)
        return handed


def test_the_same_seed_repeats_a_whole_http_run(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _fleet_run(7, monkeypatch)
    assert len(first) == BUDGET
    assert _fleet_run(7, monkeypatch) == first
    assert _fleet_run(8, monkeypatch) != first
