"""Fixtures for the web page tests: a real server filled by a short fleet run, and Chromium.

The fleet: two instances whose evaluations are stopped (SIGTERM) mid-way, so their suggestions
stay open with their ``instance_id``; then three instances run to the budget, one evaluating
fine, one whose evaluation reports failure and one whose evaluation crashes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.ports import wait_until
from tests.support.server import RunningServer

TOKEN = "web-suite-token-7d41e0"
REPO = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = REPO / "docs" / "img"
BUDGET = 16
STUCK = ("i-0web00000000stk1", "i-0web00000000stk2")
RUNNERS = {
    "i-0web000000000ok1": "ok",
    "i-0web000000000ok2": "ok",
    "i-0web00000000fail": "fail",
    "i-0web00000000exit": "exit1",
}
XSS_INSTANCE = '<img src=x onerror="window.__xss=1">'


@dataclass
class Fleet:
    """The server and what the fleet left in it."""

    server: RunningServer
    api: Api
    experiment_id: str
    other_token: str

    @property
    def page_url(self) -> str:
        return f"{self.server.url}/experiments/{self.experiment_id}"


def _create_experiment(api: Api) -> str:
    body: dict[str, Any] = {
        "name": "web page fleet <b>demo</b>",
        "parameters": [
            {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}},
            {"name": "y", "type": "double", "bounds": {"min": 0, "max": 1}},
            {"name": "layers", "type": "int", "bounds": {"min": 1, "max": 4}},
            {"name": "optimizer", "type": "categorical", "categorical_values": ["adam", "sgd"]},
        ],
        "metrics": [{"name": "score", "objective": "maximize"}],
        "observation_budget": BUDGET,
        "parallel_bandwidth": 3,
    }
    return str(api.call("POST", "/experiments", json=body)["id"])


def _fleet_run(server: RunningServer, eid: str, work: Path) -> None:
    """Stuck instances start an evaluation and are stopped (their suggestions stay open, their
    lease unexpired so nobody adopts them); meanwhile the others run to the budget."""
    imdses = [emulator(iid, lifecycle="spot") for iid in STUCK] + [emulator(iid) for iid in RUNNERS]
    try:
        stuck = [
            AgentProcess(
                server.url,
                server.token,
                eid,
                imds.url,
                work / iid,
                mode="wait",
                env={"EVAL_RELEASE": str(work / "never")},
            ).start()
            for imds, iid in zip(imdses, STUCK)
        ]
        wait_until(
            lambda: all(len(a.evaluations()) == 1 for a in stuck), 60, "stuck evaluations start"
        )
        runners = [
            AgentProcess(server.url, server.token, eid, imds.url, work / iid, mode=mode).start()
            for imds, (iid, mode) in zip(imdses[len(STUCK) :], RUNNERS.items())
        ]
        for agent in stuck:
            agent.signal(signal.SIGTERM)
        for agent in stuck + runners:
            assert agent.wait(120) == 0, agent.output()
    finally:
        for imds in imdses:
            imds.stop()


def _new_token(server: RunningServer) -> str:
    """A token of another client, made with the operator CLI."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optfleet.cli",
            "token",
            "create",
            "--db",
            server.db_url,
            "--name",
            "other-team",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A server after a short fleet run (open, failed and fine evaluations)."""
    work = tmp_path_factory.mktemp("web-fleet")
    with RunningServer.start(token=TOKEN) as server:
        api = Api(server.url, server.token)
        eid = _create_experiment(api)
        _fleet_run(server, eid, work)
        # Metadata is user data: an open suggestion whose values are markup.
        api.create_suggestion(eid, {"instance_id": XSS_INSTANCE, "note": "<script>x()</script>"})
        yield Fleet(server=server, api=api, experiment_id=eid, other_token=_new_token(server))


def sign_in(browser: Any, fleet: Fleet, token: str | None = None) -> Any:
    """A new browser context signed in through the form; returns (context, page)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{fleet.server.url}/signin")
    page.fill("#token", token or fleet.server.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{fleet.server.url}/")
    return context, page


def rendered_summary(page: Any, url: str) -> str:
    """Open an experiment page, wait until its script rendered the data, return the summary."""
    page.goto(url)
    page.wait_for_selector("#app[data-rendered]")
    return str(page.locator("#summary").text_content())
