"""A minimal SigOpt-v1 HTTP client for benchmarks: one ``requests.Session`` per thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

TIMEOUT_S = 60

# The benchmark search space: 5 parameters, every kind, one log-scaled.
PARAMETERS: list[dict[str, Any]] = [
    {"name": "lr", "type": "double", "bounds": {"min": 1e-5, "max": 1.0}, "transformation": "log"},
    {"name": "momentum", "type": "double", "bounds": {"min": 0.0, "max": 1.0}},
    {"name": "units", "type": "int", "bounds": {"min": 1, "max": 100}},
    {"name": "activation", "type": "categorical", "categorical_values": ["relu", "tanh", "gelu"]},
    {"name": "shift", "type": "double", "bounds": {"min": -5.0, "max": 5.0}},
]


def random_assignments(rng: random.Random) -> dict[str, Any]:
    """Assignments drawn uniformly from ``PARAMETERS``."""
    return {
        "lr": 10 ** rng.uniform(-5, 0),
        "momentum": rng.random(),
        "units": rng.randint(1, 100),
        "activation": rng.choice(["relu", "tanh", "gelu"]),
        "shift": rng.uniform(-5, 5),
    }


def loss_of(assignments: dict[str, Any]) -> float:
    """A smooth synthetic objective (to minimize)."""
    return float(
        (float(assignments["momentum"]) - 0.7) ** 2
        + (float(assignments["shift"]) / 5) ** 2
        + abs(int(assignments["units"]) - 40) / 100
        + (0.1 if assignments["activation"] == "tanh" else 0.0)
    )


class Api:
    """Calls ``/v1`` of one server; thread-safe (a session per thread)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = f"{base_url}/v1"
        self._auth = (token, "")
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            self._local.session = session
        return session

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request; raises with the server's message on any non-200."""
        response = self._session().request(method, self.base + path, json=body, timeout=TIMEOUT_S)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        result: dict[str, Any] = response.json()
        return result

    def timed(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[float, dict[str, Any]]:
        """(milliseconds, response) of one request."""
        started = time.perf_counter()
        result = self.call(method, path, body)
        return (time.perf_counter() - started) * 1000, result

    def create_experiment(self, name: str, budget: int = 100_000) -> str:
        """A TPE (``offline``) experiment over ``PARAMETERS`` minimizing ``loss``."""
        body = {
            "name": name,
            "type": "offline",
            "parameters": PARAMETERS,
            "metrics": [{"name": "loss", "objective": "minimize"}],
            "observation_budget": budget,
        }
        return str(self.call("POST", "/experiments", body)["id"])

    def observe_assignments(
        self, experiment_id: str, assignments: dict[str, Any], failed: bool
    ) -> None:
        """A manual observation (no suggestion)."""
        body: dict[str, Any] = {"assignments": assignments}
        if failed:
            body["failed"] = True
        else:
            body["values"] = [{"name": "loss", "value": loss_of(assignments)}]
        self.call("POST", f"/experiments/{experiment_id}/observations", body)


def in_parallel(count: int, task: Callable[[int], None], workers: int = 8) -> None:
    """Run ``task(i)`` for i in range(count) on a thread pool; re-raise the first error."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(task, i) for i in range(count)]:
            future.result()


def seed_observations(api: Api, experiment_id: str, count: int, seed: int) -> None:
    """``count`` manual observations (5% failed) through the API, 8 clients at a time."""

    def one(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        api.observe_assignments(experiment_id, random_assignments(rng), failed=rng.random() < 0.05)

    in_parallel(count, one)


def open_manual_suggestions(api: Api, experiment_id: str, count: int, seed: int) -> None:
    """``count`` open suggestions with given assignments (they become running trials)."""

    def one(i: int) -> None:
        rng = random.Random(seed * 7_000_003 + i)
        body = {"assignments": random_assignments(rng)}
        api.call("POST", f"/experiments/{experiment_id}/suggestions", body)

    in_parallel(count, one)
