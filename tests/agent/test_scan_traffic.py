"""An agent's request rate does not grow with the number of open suggestions of its experiment.

The agent runs in-process against the real server behind the fault proxy (which counts every
request), on a simulated monotonic clock: the evaluation is a fake that advances the clock by
whatever the agent waits for, so a simulated 40 s evaluation takes no real time and the same run
replays exactly (seeded jitter). Foreign open suggestions hold fresh leases, so nothing is
adopted: what is measured is the steady-state traffic of one agent.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.agent.helpers import Api
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer
from worker_bootstrap.agent import Agent
from worker_bootstrap.api_client import ApiClient
from worker_bootstrap.config import Settings
from worker_bootstrap.evaluation import Evaluator, Running, Task
from worker_bootstrap.imds import Identity
from worker_bootstrap.journal import Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.results import Outcome
from worker_bootstrap.retry import Backoff

ME = "i-0traffic0000001"
EVALUATION_S = 40.0  # simulated; shorter than the 60 s scan interval, so scans are not hidden
EVALUATIONS = 30
FAR_FUTURE = 4_000_000_000  # a lease that never lapses during the test


class SimulatedTime:
    """A monotonic clock that only moves when the fake evaluation waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _SimulatedRun(Running):
    time: SimulatedTime
    ends_at: float

    def poll(self) -> Optional[Outcome]:
        return Outcome(values=[{"value": 1.0}]) if self.time.now >= self.ends_at else None

    def wait(self, timeout_s: float) -> Optional[Outcome]:
        self.time.now += timeout_s
        return self.poll()

    def terminate(self) -> None:
        self.ends_at = self.time.now

    def kill(self) -> None:
        self.ends_at = self.time.now


class SimulatedEvaluator(Evaluator):
    """Every evaluation lasts ``EVALUATION_S`` of simulated time."""

    def __init__(self, time: SimulatedTime) -> None:
        self.time = time

    def start(self, task: Task) -> Running:
        return _SimulatedRun(self.time, self.time.now + EVALUATION_S)


KINDS = [
    ("create_suggestion", "POST", r"/suggestions$"),
    ("create_observation", "POST", r"/observations$"),
    ("progress", "GET", r"/experiments/\d+$"),
    ("lease_read", "GET", r"/suggestions/\d+$"),
    ("lease_write", "PUT", r"/suggestions/\d+$"),
    ("scan_page", "GET", r"/suggestions\?"),
]


def kind_of(method: str, path: str) -> str:
    for kind, want, pattern in KINDS:
        if method == want and re.search(pattern, path):
            return kind
    return f"other {method} {path}"


def run_agent(
    server: RunningServer, api: Api, root: Path, foreign: int, scan_rows: int
) -> Counter[str]:
    """Requests by kind of one agent doing ``EVALUATIONS`` evaluations next to ``foreign`` open
    suggestions of other instances."""
    eid = api.create_experiment(budget=None, name=f"traffic-{foreign}")
    for n in range(foreign):
        api.call(
            "POST",
            f"/experiments/{eid}/suggestions",
            json={
                "assignments": {"x": n / (foreign + 1), "y": 0.5},
                "metadata": {"instance_id": f"i-0other{n:09d}", "lease_expires_at": FAR_FUTURE},
            },
        )
    with FaultProxy(server.url) as proxy:
        settings = Settings(
            experiment_id=eid,
            api_url=proxy.url,
            token=server.token,
            token_secret=None,
            command=[],
            workdir=None,
            state_dir=root,
            max_evaluations=EVALUATIONS,
            lease_ttl_s=90.0,  # renewed every 30 s: once per evaluation
            http_timeout_s=5.0,
            orphan_detection="lease",
            adopt_scan_rows=scan_rows,
        )
        time = SimulatedTime()
        agent = Agent(
            settings=settings,
            api=ApiClient(proxy.url, server.token, timeout=(5.0, 30.0), backoff=Backoff(3)),
            identity=Identity(ME, "c5.large", "us-east-1a", "us-east-1", "on-demand", "ami-1"),
            evaluator=SimulatedEvaluator(time),
            journal=Journal(root),
            log=EventLog(),
            monotonic=time,
            rng=random.Random(7),
        )
        summary = agent.run()
        assert summary.evaluations == EVALUATIONS and summary.adopted == 0
        counts = Counter(kind_of(method, path) for method, path, _, _ in proxy.log)
    counts["simulated_s"] = int(time.now - 1000.0)
    counts["listed_rows"] = counts["scan_page"] * foreign  # one page each: all fit
    return counts


@pytest.fixture(scope="module")
def traffic(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Counter[str]]:
    api = Api(server.url, server.token)
    runs = {}
    for label, foreign, scan_rows in (("10", 10, 100), ("200", 200, 100), ("200 old", 200, 0)):
        runs[label] = run_agent(server, api, tmp_path_factory.mktemp("agent"), foreign, scan_rows)
    return runs


def test_request_rate_with_200_open_suggestions_is_no_higher_than_with_10(
    traffic: dict[str, Counter[str]],
) -> None:
    few, many = traffic["10"], traffic["200"]
    assert few["simulated_s"] == many["simulated_s"]  # same simulated time: counts are rates
    for kind in (
        "create_suggestion",
        "create_observation",
        "progress",
        "lease_read",
        "lease_write",
    ):
        assert many[kind] == few[kind], kind
    assert [k for k in many if k.startswith("other")] == []
    assert many["scan_page"] <= few["scan_page"]
    assert sum(many[k] for k, _, _ in KINDS) <= sum(few[k] for k, _, _ in KINDS)


def test_rows_listed_per_interval_are_capped_by_scan_rows(
    traffic: dict[str, Counter[str]],
) -> None:
    many, old = traffic["200"], traffic["200 old"]
    intervals = many["simulated_s"] / 60.0
    # About scan_rows (100) rows per base interval; the jittered draws stay within x1.5.
    assert many["listed_rows"] <= 1.5 * 100 * intervals + 201  # + the scan at start
    # The old fixed cadence lists the whole open set every interval: the cap is what changed.
    assert old["listed_rows"] >= 1.5 * many["listed_rows"]
