"""The agent against the real server: stamps, budget, API calls, several instances at once."""

from __future__ import annotations

from pathlib import Path

from tests.agent.helpers import EVALUATE, AgentProcess, Api, emulator
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer

IDENTITY_KEYS = ("instance_id", "instance_type", "availability_zone", "lifecycle", "agent_version")


def test_runs_to_budget_and_stamps_metadata(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=3)
    with emulator("i-0basic000000001", lifecycle="spot") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a")
        assert agent.run() == 0, agent.output()
        assert imds.authorization_headers_seen == 0  # the API token never goes to IMDS
        assert imds.request_count > 0
    observations = api.observations(eid)
    assert len(observations) == 3
    for obs in observations:
        meta = obs["metadata"]
        for key in IDENTITY_KEYS:
            assert meta[key], key
        assert meta["instance_id"] == "i-0basic000000001"
        assert meta["lifecycle"] == "spot"
        assert meta["resumed"] == 0 and meta["attempt"] == 1
        assert meta["duration_s"] >= 0
        assert meta["note"] == "fine"  # the evaluation's own metadata
        assert obs["values"][0]["value"] <= 0
    for suggestion in api.suggestions(eid):
        assert suggestion["state"] == "closed"
        assert suggestion["metadata"]["instance_id"] == "i-0basic000000001"
        assert float(suggestion["metadata"]["lease_expires_at"]) > 0
    finished = agent.events("agent_finished")
    assert finished and finished[0]["reason"] == "budget_reached"
    for event in agent.events():
        assert event["instance_id"] == "i-0basic000000001"
    # No leftovers in the state directory once everything is reported.
    assert list((workdir / "a" / "journal").iterdir()) == []
    assert list((workdir / "a" / "checkpoints").iterdir()) == []
    assert not any(r["token_visible"] for r in agent.evaluations())


def test_at_most_three_api_calls_per_evaluation(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=5)
    with emulator("i-0calls000000001") as imds, FaultProxy(server.url) as proxy:
        # No periodic orphan scan inside the run, however slow the machine makes it.
        env = {"OPTFLEET_ADOPT_INTERVAL": "3600"}
        agent = AgentProcess(proxy.url, server.token, eid, imds.url, workdir / "a", env=env)
        assert agent.run() == 0, agent.output()
    calls = [(method, path.split("?")[0]) for method, path, _, _ in proxy.log]
    creates = calls.count(("POST", f"/v1/experiments/{eid}/suggestions"))
    reports = calls.count(("POST", f"/v1/experiments/{eid}/observations"))
    progress = calls.count(("GET", f"/v1/experiments/{eid}"))
    listings = calls.count(("GET", f"/v1/experiments/{eid}/suggestions"))
    assert creates == reports == 5
    # One progress check per evaluation, plus the one at start.
    assert progress == 5 + 1
    # Start-up listing (resume + orphans) and the last look at the budget; nothing else.
    assert listings == 2
    assert len(calls) == creates + reports + progress + listings
    steady = (creates + reports + progress - 1) / 5
    assert steady <= 3


def test_several_agents_each_suggestion_observed_once(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=9)
    imdses = [emulator(f"i-0multi00000000{n}") for n in range(3)]
    try:
        agents = [
            AgentProcess(server.url, server.token, eid, imds.url, workdir / f"a{n}")
            for n, imds in enumerate(imdses)
        ]
        for agent in agents:
            agent.start()
        for agent in agents:
            assert agent.wait(90) == 0, agent.output()
    finally:
        for imds in imdses:
            imds.stop()
    per_suggestion = api.observations_per_suggestion(eid)
    assert len(per_suggestion) >= 9
    assert set(per_suggestion.values()) == {1}
    assert api.open_suggestions(eid) == []
    owners = {obs["metadata"]["instance_id"] for obs in api.observations(eid)}
    assert owners <= {f"i-0multi00000000{n}" for n in range(3)}


def test_experiment_id_from_instance_tags(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0tagged00000001", Experiment=eid) as imds:
        agent = AgentProcess(server.url, server.token, "unused", imds.url, workdir / "a")
        index = agent.argv.index("--experiment")
        del agent.argv[index : index + 2]
        assert agent.run() == 0, agent.output()
    assert len(api.observations(eid)) == 1


def test_config_file_settings(server: RunningServer, api: Api, workdir: Path) -> None:
    """The env file carries everything (as under systemd); the command comes from it too."""
    eid = api.create_experiment(budget=1)
    with emulator("i-0configfile0001") as imds:
        config = workdir / "agent.env"
        command = " ".join(EVALUATE)
        config.write_text(
            f"# written by a test\nOPTFLEET_EXPERIMENT_ID={eid}\nSIGOPT_API_URL={server.url}\n"
            f"SIGOPT_API_TOKEN={server.token}\nOPTFLEET_STATE_DIR={workdir / 'state'}\n"
            f'OPTFLEET_COMMAND="{command}"\n'
        )
        agent = AgentProcess(server.url, None, eid, imds.url, workdir / "a")
        agent.argv = [*agent.argv[:3], "run", "--config", str(config)]
        assert agent.run() == 0, agent.output()
    assert len(api.observations(eid)) == 1
    assert (workdir / "state" / "journal").is_dir()
