"""Bad evaluations and bad environments: each has a clear outcome, nothing crashes or leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conftest import TOKEN
from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.fault_proxy import FaultProxy
from tests.support.ports import free_port
from tests.support.server import RunningServer


@pytest.mark.parametrize(
    ("mode", "reason", "extra"),
    [
        ("nan", "invalid result: result contains NaN", {}),
        ("invalid_json", "invalid result: result file is not valid JSON", {}),
        ("exit1", "evaluation exited with code 1", {"exit_code": 1}),
        ("hang", "evaluation timed out after 1.5 s", {}),
        ("fail", "evaluation reported failure: diverged", {}),
    ],
)
def test_bad_evaluation_becomes_a_failed_observation(
    mode: str, reason: str, extra: dict[str, int], server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0bad000000000001") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            mode=mode,
            # Only the hanging evaluation should meet the timeout; the others get time to start
            # even on a busy machine.
            env={
                "OPTFLEET_TIMEOUT": "1.5" if mode == "hang" else "60",
                "OPTFLEET_GRACE_PERIOD": "0.5",
            },
        )
        assert agent.run() == 0, agent.output()
    [obs] = api.observations(eid)
    assert obs["failed"] is True
    assert obs["metadata"]["failure_reason"].startswith(reason)
    for key, value in extra.items():
        assert obs["metadata"][key] == value
    if mode == "exit1":
        assert "ValueError: bad learning rate" in obs["metadata"]["stderr_tail"]
    assert api.open_suggestions(eid) == []


def test_garbage_output_does_not_break_the_agent_or_its_logs(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0garbage00000001") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a", mode="garbage")
        assert agent.run() == 0, agent.output()
    [obs] = api.observations(eid)
    assert obs["failed"] is False
    assert agent.events("observation_reported")  # stdout is still one JSON event per line


def test_values_the_server_rejects_become_a_failure_with_the_reason(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1, metrics=[{"name": "accuracy"}])
    with emulator("i-0reject000000001") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a", mode="named")
        assert agent.run() == 0, agent.output()
    [obs] = api.observations(eid)
    assert obs["failed"] is True
    assert obs["metadata"]["failure_reason"].startswith("server rejected the result")


def test_missing_token(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0notoken00000001") as imds:
        agent = AgentProcess(server.url, None, eid, imds.url, workdir / "a")
        assert agent.run() == 2
    assert "no API token: set SIGOPT_API_TOKEN" in agent.output()
    [error] = agent.events("agent_error")
    assert error["kind"] == "config"
    # The fields docs/agent.md promises on every line; no suggestion was being worked on.
    assert isinstance(error["ts"], float)
    assert error["instance_id"] == "i-0notoken00000001"
    assert error["experiment_id"] == str(eid)
    assert "suggestion_id" in error and error["suggestion_id"] is None


def test_agent_error_names_the_suggestion_it_was_reporting(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    me = "i-0errfields00001"
    with emulator(me) as imds, FaultProxy(server.url) as proxy:
        proxy.add("status", method="POST", path=r"/observations$", times=100, status=503)
        twice = {"OPTFLEET_HTTP_ATTEMPTS": "2"}
        agent = AgentProcess(proxy.url, server.token, eid, imds.url, workdir / "a", env=twice)
        assert agent.run() == 4, agent.output()
    [error] = agent.events("agent_error")
    [still_open] = api.open_suggestions(eid)
    assert error["kind"] == "api"
    assert (error["instance_id"], error["experiment_id"]) == (me, str(eid))
    assert error["suggestion_id"] == str(still_open["id"])
    assert isinstance(error["ts"], float)


def test_wrong_token_is_reported_without_leaking_it(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    secret = "wrong-token-9d8c7b6a5f"
    with emulator("i-0wrongtok0000001") as imds:
        agent = AgentProcess(server.url, secret, eid, imds.url, workdir / "a")
        assert agent.run() == 4
    output = agent.output()
    assert "HTTP 403" in output or "HTTP 401" in output
    assert secret not in output


def test_token_never_logged_in_a_normal_run(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=2)
    with emulator("i-0tokenlog0000001") as imds:
        agent = AgentProcess(server.url, TOKEN, eid, imds.url, workdir / "a", mode="exit1")
        assert agent.run() == 0
    assert TOKEN not in agent.output()
    for obs in api.observations(eid):
        assert TOKEN not in str(obs["metadata"])


def test_imds_unreachable(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    agent = AgentProcess(
        server.url, server.token, eid, f"http://127.0.0.1:{free_port()}", workdir / "a"
    )
    assert agent.run() == 3
    assert "not running on EC2" in agent.output()
    assert api.suggestions(eid) == []


def test_server_unreachable_at_start(api: Api, workdir: Path) -> None:
    with emulator("i-0noserver0000001") as imds:
        agent = AgentProcess(
            f"http://127.0.0.1:{free_port()}",
            TOKEN,
            "1",
            imds.url,
            workdir / "a",
            env={"OPTFLEET_HTTP_ATTEMPTS": "3"},
        )
        assert agent.run() == 4
    output = agent.output()
    assert "failed after 3 attempt(s)" in output
    assert TOKEN not in output


def test_unknown_experiment(server: RunningServer, workdir: Path) -> None:
    with emulator("i-0noexp0000000001") as imds:
        agent = AgentProcess(server.url, server.token, "987654", imds.url, workdir / "a")
        assert agent.run() == 4
    assert "experiment 987654 not found" in agent.output()


def test_missing_command(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0nocmd0000000001") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a", command=[])
        agent.argv = agent.argv[:-1]  # no "--" either
        assert agent.run() == 2
    assert "no evaluation command" in agent.output()
