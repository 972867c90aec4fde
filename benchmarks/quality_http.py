"""``--http``: optfleet driven as the fleet drives it, through a real server's SigOpt v1 API.

The benchmark's parent process starts one server (``serving``); forked worker processes inherit
its address and each run creates its own experiment there. The server has no seed setting yet,
so these runs cannot be repeated exactly (the in-process ``optfleet`` method can).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks._api import Api
from benchmarks.quality_methods import METRIC
from benchmarks.quality_problems import Problem
from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec

TOKEN = "bench-quality-token"  # noqa: S105 - a throwaway token for a loopback server
_server_url: str | None = None


@contextmanager
def serving() -> Iterator[str]:
    """A server on loopback for the benchmark's lifetime; its URL."""
    global _server_url
    from tests.support.server import RunningServer

    with RunningServer.start(token=TOKEN) as server:
        _server_url = server.url
        try:
            yield server.url
        finally:
            _server_url = None


def sigopt_parameter(param: ParameterSpec) -> dict[str, Any]:
    """The SigOpt v1 JSON of one parameter."""
    if param.type == "categorical":
        return {"name": param.name, "type": "categorical", "categorical_values": param.categories}
    body: dict[str, Any] = {
        "name": param.name,
        "type": param.type,
        "bounds": {"min": param.low, "max": param.high},
    }
    if param.log:
        body["transformation"] = "log"
    return body


class HttpOptimizer:
    """One experiment on the benchmark's server: ask = create a suggestion, tell = observe it."""

    def __init__(self, problem: Problem, seed: int) -> None:
        if _server_url is None:
            raise RuntimeError("the optfleet_http method needs bench_quality --http")
        self._api = Api(_server_url, TOKEN)
        body = {
            "name": f"quality {problem.name} seed {seed}",
            "type": "offline",
            "parameters": [sigopt_parameter(p) for p in problem.parameters],
            "metrics": [{"name": METRIC, "objective": "minimize"}],
        }
        self._experiment = self._api.call("POST", "/experiments", body)["id"]

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        suggestion = self._api.call("POST", f"/experiments/{self._experiment}/suggestions", {})
        return int(suggestion["id"]), dict(suggestion["assignments"])

    def tell(self, handle: int, value: float) -> None:
        body = {"suggestion": str(handle), "values": [{"name": METRIC, "value": value}]}
        self._api.call("POST", f"/experiments/{self._experiment}/observations", body)
