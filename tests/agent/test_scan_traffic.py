"""An agent's request rate does not grow with the number of open suggestions of its experiment.

The agent runs in-process against the real server behind the fault proxy (which counts every
request), on simulated clocks: the evaluation is a fake that advances them by whatever the agent
waits for, so a simulated 40 s evaluation takes no real time and the same run replays exactly
(seeded jitter). Foreign open suggestions hold fresh leases, so nothing is adopted: what is
measured is the steady-state traffic of one agent, with the server's lease filter and without it
(a plain SigOpt server: the proxy drops the parameter, as the open-source server ignores it, or
refuses it with a 400; or the agent is told not to ask).
"""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.agent.helpers import Api
from tests.support.agent_requests import NAMES, kind_of
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer
from worker_bootstrap.api_client import ApiClient
from worker_bootstrap.clocks import Clocks
from worker_bootstrap.config import Settings
from worker_bootstrap.evaluation import Evaluator, Running, Task
from worker_bootstrap.imds import Identity
from worker_bootstrap.instance import Instance
from worker_bootstrap.journal import Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.results import Outcome
from worker_bootstrap.retry import Backoff
from worker_bootstrap.wiring import wire_agent

ME = "i-0traffic0000001"
DEAD = "i-0dead000000001"
EVALUATION_S = 40.0  # simulated; shorter than the 60 s scan interval, so scans are not hidden
EVALUATIONS = 30
FAR_FUTURE = 4_000_000_000  # a lease that never lapses during the test


class SimulatedTime:
    """A monotonic clock that only moves when the agent waits; ``wall`` is the matching time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_at_start = time.time()

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_at_start + self.now - 1000.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _SimulatedRun(Running):
    clock: SimulatedTime
    ends_at: float

    def poll(self) -> Optional[Outcome]:
        return Outcome(values=[{"value": 1.0}]) if self.clock.now >= self.ends_at else None

    def wait(self, timeout_s: float) -> Optional[Outcome]:
        self.clock.sleep(timeout_s)
        return self.poll()

    def terminate(self) -> None:
        self.ends_at = self.clock.now

    def kill(self) -> None:
        self.ends_at = self.clock.now


class SimulatedEvaluator(Evaluator):
    """Every evaluation lasts ``EVALUATION_S`` of simulated time."""

    def __init__(self, clock: SimulatedTime) -> None:
        self.clock = clock

    def start(self, task: Task) -> Running:
        return _SimulatedRun(self.clock, self.clock.now + EVALUATION_S)


@dataclass
class Run:
    """What one agent run sent (requests by kind), and what it logged."""

    counts: Counter[str]
    events: list[dict[str, Any]]
    eid: str


def run_agent(
    server: RunningServer,
    api: Api,
    root: Path,
    foreign: int,
    scan_rows: int = 100,
    server_filter: str = "applied",
    orphan_lapses_at: float | None = None,
    mine_open: bool = False,
) -> Run:
    """One agent doing ``EVALUATIONS`` evaluations next to ``foreign`` open suggestions of other
    instances. ``server_filter``: ``applied`` (our server), ``ignored`` (the proxy forwards the
    list without the filter), ``refused`` (the proxy answers it with a 400) or ``off`` (the agent
    never asks). ``orphan_lapses_at``: the
    simulated second at which one more foreign suggestion's lease lapses (its owner died).
    ``mine_open``: one suggestion of this instance is open at start (the instance restarted
    after creating it; with no journal entry it is picked up, not resumed)."""
    clock = SimulatedTime()
    eid = api.create_experiment(budget=None, name=f"traffic-{foreign}")
    if orphan_lapses_at is not None:
        lease = clock.wall() + orphan_lapses_at
        api.create_suggestion(eid, {"instance_id": DEAD, "lease_expires_at": lease})
    if mine_open:
        api.create_suggestion(eid, {"instance_id": ME, "lease_expires_at": clock.wall() + 60})
    for n in range(foreign):
        api.call(
            "POST",
            f"/experiments/{eid}/suggestions",
            json={
                "assignments": {"x": n / (foreign + 1), "y": 0.5},
                "metadata": {"instance_id": f"i-0other{n:09d}", "lease_expires_at": FAR_FUTURE},
            },
        )
    lines = io.StringIO()
    with FaultProxy(server.url) as proxy:
        for param in ("lease_expired_by", "metadata.instance_id"):  # our two list filters
            if server_filter == "refused":
                proxy.add("status", method="GET", path=f"{param}=", status=400, times=None)
            if server_filter == "ignored":
                proxy.add("drop_param", method="GET", path=f"{param}=", param=param, times=None)
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
            claim_settle_s=11.0,  # simulated, like every wait of the agent
            orphan_detection="lease",
            adopt_scan_rows=scan_rows,
            scan_filters=server_filter != "off",
        )
        agent = wire_agent(
            settings=settings,
            api=ApiClient(proxy.url, server.token, timeout=(5.0, 30.0), backoff=Backoff(3)),
            instance=Instance(
                Identity(ME, "c5.large", "us-east-1a", "us-east-1", "on-demand", "ami-1")
            ),
            evaluator=SimulatedEvaluator(clock),
            journal=Journal(root),
            log=EventLog(lines, clock=clock.wall),
            clocks=Clocks(wall=clock.wall, monotonic=clock, sleep=clock.sleep),
            rng=random.Random(7),
        )
        summary = agent.run()
        assert summary.evaluations == EVALUATIONS
        counts = Counter(kind_of(method, path) for method, path, _, _ in proxy.log)
    counts["simulated_s"] = int(clock.now - 1000.0)
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    counts["listed_rows"] = sum(
        e["open"] for e in events if e["event"].endswith("_suggestions_listed")
    )
    return Run(counts, events, eid)


RUNS: dict[str, dict[str, Any]] = {
    "10": {"foreign": 10},
    "200": {"foreign": 200},
    "10 plain": {"foreign": 10, "server_filter": "ignored"},
    "200 plain": {"foreign": 200, "server_filter": "ignored"},
    "200 strict": {"foreign": 200, "server_filter": "refused"},
    "200 old": {"foreign": 200, "scan_rows": 0, "server_filter": "off"},
}


@pytest.fixture(scope="module")
def traffic(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    api = Api(server.url, server.token)
    return {
        label: run_agent(server, api, tmp_path_factory.mktemp("agent"), **options)
        for label, options in RUNS.items()
    }


def total(run: Run) -> int:
    return sum(run.counts[kind] for kind in NAMES)


@pytest.mark.parametrize(("few", "many"), [("10", "200"), ("10 plain", "200 plain")])
def test_request_rate_with_200_open_suggestions_is_no_higher_than_with_10(
    traffic: dict[str, Run], few: str, many: str
) -> None:
    a, b = traffic[few].counts, traffic[many].counts
    assert a["simulated_s"] == b["simulated_s"]  # same simulated time: counts are rates
    for kind in (
        "create_suggestion",
        "create_observation",
        "progress",
        "lease_read",
        "lease_write",
    ):
        assert b[kind] == a[kind], kind
    assert [k for k in b if k.startswith("other")] == []
    assert b["scan_page"] + b["lapsed_scan_page"] <= a["scan_page"] + a["lapsed_scan_page"]
    assert total(traffic[many]) <= total(traffic[few])


def test_rows_listed_per_interval_are_capped_by_scan_rows(traffic: dict[str, Run]) -> None:
    for label in ("200", "200 plain"):
        many = traffic[label].counts
        intervals = many["simulated_s"] / 60.0
        # About scan_rows (100) rows per base interval; the jittered draws stay within x1.5.
        assert many["listed_rows"] <= 1.5 * 100 * intervals + 200, label  # + the scan at start
    # The old fixed cadence lists the whole open set every interval: the cap is what changed.
    assert traffic["200 old"].counts["listed_rows"] >= 1.5 * traffic["200"].counts["listed_rows"]


@pytest.mark.parametrize(("label", "status"), [("200 plain", 200), ("200 strict", 400)])
def test_server_filter_is_used_when_applied_and_dropped_when_ignored_or_refused(
    traffic: dict[str, Run], label: str, status: int
) -> None:
    assert traffic["200"].counts["lapsed_scan_page"] >= 5
    assert not [e for e in traffic["200"].events if e["event"] == "lease_filter_unsupported"]
    plain = traffic[label]
    assert plain.counts["lapsed_scan_page"] == 1  # asked once, then never again
    unsupported = [e for e in plain.events if e["event"] == "lease_filter_unsupported"]
    assert [e["status"] for e in unsupported] == [status]


@pytest.mark.parametrize("server_filter", ["applied", "ignored"])
def test_an_orphan_that_appears_later_is_adopted_once(
    server: RunningServer, api: Api, tmp_path: Path, server_filter: str
) -> None:
    run = run_agent(server, api, tmp_path, 200, server_filter=server_filter, orphan_lapses_at=300)
    adopted = [e for e in run.events if e["event"] == "suggestion_adopted"]
    assert len(adopted) == 1 and adopted[0]["previous_owner"] == DEAD
    sid = adopted[0]["suggestion_id"]
    assert api.observations_per_suggestion(run.eid)[sid] == 1
    assert api.suggestion(run.eid, sid)["state"] == "closed"
    lapsed_scans = [e for e in run.events if e["event"] == "lapsed_suggestions_listed"]
    assert bool(lapsed_scans) == (server_filter == "applied")


@pytest.mark.parametrize(("server_filter", "first"), [("applied", "own"), ("ignored", "open")])
def test_at_scale_the_scan_at_start_lists_only_mine_and_resumes_it(
    server: RunningServer, api: Api, tmp_path: Path, server_filter: str, first: str
) -> None:
    """200 open suggestions (> scan_rows): on our server the start lists this instance's only;
    the first full scan comes later. On a plain server the start lists everything, as before."""
    run = run_agent(server, api, tmp_path, 200, server_filter=server_filter, mine_open=True)
    listings = [e for e in run.events if e["event"].endswith("_suggestions_listed")]
    assert listings[0]["event"] == f"{first}_suggestions_listed" and listings[0]["at_start"]
    assert listings[0]["mine"] == 1 and listings[0]["open"] == (1 if first == "own" else 201)
    assert any(e["event"] == "open_suggestions_listed" for e in listings[1:])
    taken_up = [
        e for e in run.events if e["event"] in ("suggestion_resumed", "suggestion_picked_up")
    ]
    assert len(taken_up) == 1
    assert api.observations_per_suggestion(run.eid)[taken_up[0]["suggestion_id"]] == 1
