"""Shared helpers for the agent tests: experiments, agent processes, reading results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from emulators.imds import ImdsEmulator, InstanceIdentity

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EVALUATE = [sys.executable, str(HERE / "evaluate.py")]
# Run the agent under another interpreter (e.g. python3.9) with OPTFLEET_AGENT_PYTHON.
AGENT_PYTHON = os.environ.get("OPTFLEET_AGENT_PYTHON", sys.executable)


class Api:
    """A tiny outside client for setting up and inspecting experiments."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = (token, "")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}/v1{path}", timeout=30, **kwargs)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response.json()

    def create_experiment(
        self, budget: int | None = 4, name: str = "agent-test", metrics: list[Any] | None = None
    ) -> str:
        body: dict[str, Any] = {
            "name": name,
            "parameters": [
                {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}},
                {"name": "y", "type": "double", "bounds": {"min": 0, "max": 1}},
            ],
        }
        if budget is not None:
            body["observation_budget"] = budget
        if metrics is not None:
            body["metrics"] = metrics
        return str(self.call("POST", "/experiments", json=body)["id"])

    def paged(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            page = self.call("GET", path, params=query)
            items.extend(page["data"])
            before = (page.get("paging") or {}).get("before")
            if not page["data"] or not before:
                return items
            query = {**params, "before": before}

    def observations(self, eid: str) -> list[dict[str, Any]]:
        return self.paged(f"/experiments/{eid}/observations")

    def suggestions(self, eid: str, **params: Any) -> list[dict[str, Any]]:
        return self.paged(f"/experiments/{eid}/suggestions", **params)

    def open_suggestions(self, eid: str) -> list[dict[str, Any]]:
        return self.suggestions(eid, state="open")

    def suggestion(self, eid: str, sid: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/experiments/{eid}/suggestions/{sid}"))

    def create_suggestion(self, eid: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.call("POST", f"/experiments/{eid}/suggestions", json={"metadata": metadata})
        )

    def observations_per_suggestion(self, eid: str) -> Counter[str]:
        return Counter(str(obs["suggestion"]) for obs in self.observations(eid))


def emulator(instance_id: str, lifecycle: str = "on-demand", **tags: str) -> ImdsEmulator:
    """A started IMDS emulator for one simulated instance."""
    imds = ImdsEmulator(
        identity=InstanceIdentity(instance_id=instance_id, lifecycle=lifecycle), tags=tags
    )
    imds.start()
    return imds


class AgentProcess:
    """``worker-bootstrap run`` as a real subprocess; stdout (JSON events) goes to a file."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        experiment: str,
        imds_url: str,
        state_dir: Path,
        mode: str = "ok",
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir.parent / f"{state_dir.name}.agent.log"
        self.err_path = state_dir.parent / f"{state_dir.name}.agent.err"
        self.eval_log = state_dir.parent / f"{state_dir.name}.eval.log"
        self.argv = [
            AGENT_PYTHON,
            "-m",
            "worker_bootstrap",
            "run",
            "--experiment",
            experiment,
            "--api-url",
            api_url,
            "--state-dir",
            str(state_dir),
            *(args or []),
            "--",
            *(EVALUATE if command is None else command),
        ]
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SIGOPT_", "OPTFLEET_", "AWS_", "EVAL_"))
        }
        base.update(
            {
                "PYTHONPATH": str(REPO),
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url,
                "EVAL_MODE": mode,
                "EVAL_LOG": str(self.eval_log),
                "OPTFLEET_HTTP_TIMEOUT": "10",
                "OPTFLEET_SPOT_POLL_INTERVAL": "0.2",
                "OPTFLEET_GRACE_PERIOD": "5",
                "OPTFLEET_ORPHAN_DETECTION": "lease",
            }
        )
        if token is not None:
            base["SIGOPT_API_TOKEN"] = token
        base.update(env or {})
        self.env = base
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> AgentProcess:
        env = {**self.env, **extra_env}
        with open(self.log_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv, env=env, stdout=out, stderr=err, cwd=str(REPO))
        return self

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            message = f"agent did not finish in {timeout}s; log:\n{self.output()}"
            raise AssertionError(message) from None

    def run(self, timeout: float = 60, **extra_env: str) -> int:
        return self.start(**extra_env).wait(timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        err = self.err_path.read_text() if self.err_path.exists() else ""
        return text + ("\n--- stderr ---\n" + err if err else "")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines() if self.log_path.exists() else []:
            record = json.loads(line)  # every stdout line must be one JSON event
            if name is None or record.get("event") == name:
                found.append(record)
        return found

    def evaluations(self, event: str = "start") -> list[dict[str, Any]]:
        if not self.eval_log.exists():
            return []
        return [
            r
            for r in map(json.loads, self.eval_log.read_text().splitlines())
            if r.get("event") == event
        ]


def run_fleet(
    server: Any,
    eid: str,
    ids: list[str],
    workdir: Path,
    url: str | None = None,
    **options: Any,
) -> list[AgentProcess]:
    """One agent per instance id (state in ``workdir / id``), all started at once, each run to
    its end (exit 0), against ``url`` (default the server's, e.g. a proxy's); ``options`` go to
    :class:`AgentProcess` (``env``, ``command``)."""
    imdses = [emulator(instance) for instance in ids]
    try:
        agents = [
            AgentProcess(
                url or server.url, server.token, eid, imds.url, workdir / instance, **options
            )
            for instance, imds in zip(ids, imdses)
        ]
        for agent in agents:
            agent.start()
        for agent in agents:
            assert agent.wait(120) == 0, agent.output()
    finally:
        for imds in imdses:
            imds.stop()
    return agents
