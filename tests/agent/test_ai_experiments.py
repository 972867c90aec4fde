"""The agent drives a SigOpt 8 AI experiment as it drives a Core experiment (docs/agent.md, "AI
experiments"): runs in place of suggestion creates, the run's end as its one observation, the
instance stamp on both, resume, adoption and exactly-once. Real agents against the real server."""

from __future__ import annotations

import io
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.helpers import HERE, AgentProcess, Api, emulator, run_fleet
from tests.agent.test_progress import CONVERGENCE, PLATEAU
from tests.support.fault_proxy import FaultProxy
from tests.support.ports import wait_until
from tests.support.server import RunningServer
from worker_bootstrap import run
from worker_bootstrap.evaluation import Context

EVALUATE_PROGRESS = [sys.executable, str(HERE / "evaluate_progress.py")]
STEPS = ["after_suggestion_create", "during_evaluation", "after_evaluation", "after_report"]


def ai_experiment(api: Api, budget: int, name: str, training_monitor: Any = None) -> str:
    """A project and an AI experiment in it with one metric ``score``."""
    client = api.call("GET", "/tokens/self")["client"]
    project = f"p-{name}-{time.monotonic_ns() % 10**9}"
    api.call("POST", f"/clients/{client}/projects", json={"id": project, "name": project})
    body: dict[str, Any] = {
        "name": name,
        "parameters": [
            {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}},
            {"name": "y", "type": "double", "bounds": {"min": 0, "max": 1}},
        ],
        "metrics": [{"name": "score", "objective": "maximize"}],
        "budget": budget,
    }
    if training_monitor is not None:
        body["training_monitor"] = training_monitor
    created = api.call("POST", f"/clients/{client}/projects/{project}/aiexperiments", json=body)
    return str(created["id"])


def runs_of(api: Api, eid: str) -> list[dict[str, Any]]:
    return api.paged(f"/experiments/{eid}/training_runs")


def create_run(api: Api, eid: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A run made by someone else (an agent that died right after creating it)."""
    body = {"name": "by hand", "metadata": metadata}
    return dict(api.call("POST", f"/aiexperiments/{eid}/training_runs", json=body))


def assert_exactly_once(api: Api, eid: str, budget: int) -> list[dict[str, Any]]:
    """Every run of the budget ended with one observation each, none left open; the runs."""
    runs = runs_of(api, eid)
    assert len(runs) == budget, runs
    assert all(r["state"] == "completed" and r["observation"] for r in runs), runs
    per_suggestion = api.observations_per_suggestion(eid)
    assert sorted(per_suggestion) == sorted(str(r["suggestion"]) for r in runs)
    assert set(per_suggestion.values()) == {1}, per_suggestion
    assert api.open_suggestions(eid) == []
    progress = api.call("GET", f"/aiexperiments/{eid}")["progress"]
    assert progress["finished_run_count"] == budget and progress["remaining_budget"] == 0
    return runs


def stamped_by(api: Api, eid: str, run: dict[str, Any]) -> str:
    """The instance on a run's metadata, which its observation's metadata repeats."""
    observation = api.call("GET", f"/experiments/{eid}/observations/{run['observation']}")
    owner = str(run["metadata"]["instance_id"])
    assert observation["metadata"]["instance_id"] == owner, (run, observation)
    assert observation["metadata"]["duration_s"] >= 0
    return owner


def test_a_fleet_spends_the_budget_exactly(server: RunningServer, api: Api, workdir: Path) -> None:
    budget = 7
    eid = ai_experiment(api, budget, "fleet")
    fleet = [f"i-0aifleet0000000{n}" for n in range(3)]
    agents = run_fleet(server, eid, fleet, workdir)
    runs = assert_exactly_once(api, eid, budget)
    owners = [stamped_by(api, eid, run) for run in runs]
    assert set(owners) <= set(fleet)
    starts = [s for agent in agents for s in agent.evaluations()]
    assert len(starts) == budget
    # Each evaluation was told its own run (OPTFLEET_RUN_ID).
    run_of = {str(r["suggestion"]): str(r["id"]) for r in runs}
    assert sorted((s["suggestion_id"], s["run_id"]) for s in starts) == sorted(run_of.items())
    for agent in agents:
        assert agent.events("agent_finished")[0]["reason"] == "budget_reached"


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_then_restart_finishes_the_same_run(
    step: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = ai_experiment(api, 3, f"crash-{STEPS.index(step)}")
    me = f"i-0aicrash0000000{STEPS.index(step)}"
    with emulator(me) as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a")
        # Killed on the second run, so one is finished before and one after.
        killed = agent.run(OPTFLEET_TEST_CRASH_AT=f"{step}@2")
        assert killed == -signal.SIGKILL, agent.output()
        open_runs = [r for r in runs_of(api, eid) if r["state"] == "active"]
        starts_before = agent.evaluations()
        assert agent.run() == 0, agent.output()
    runs = assert_exactly_once(api, eid, 3)
    assert {stamped_by(api, eid, run) for run in runs} == {me}
    if step == "after_report":
        assert open_runs == []  # the run ended; only the journal lags
        return
    assert [r["metadata"]["instance_id"] for r in open_runs] == [me]
    crashed = open_runs[0]
    sid = str(crashed["suggestion"])
    starts = [s for s in agent.evaluations() if s["suggestion_id"] == sid]
    finished = next(r for r in runs if r["id"] == crashed["id"])
    observation = api.call("GET", f"/experiments/{eid}/observations/{finished['observation']}")
    if step == "during_evaluation":
        # Started, killed, resumed: the same run, the same checkpoint directory.
        assert agent.events("suggestion_resumed")[0]["suggestion_id"] == sid
        assert [s["resumed"] for s in starts] == ["0", "1"]
        assert len({s["checkpoint_dir"] for s in starts}) == 1
        assert starts[-1]["had_checkpoint"] == ["progress"]
        assert observation["metadata"]["resumed"] == 1
        assert observation["metadata"]["attempt"] == 2
    elif step == "after_suggestion_create":
        # Created, never started: its first start after the restart.
        assert agent.events("suggestion_picked_up")[0]["suggestion_id"] == sid
        assert [s["resumed"] for s in starts] == ["0"]
    else:
        # Evaluated before the crash: reported from the journal, never recomputed.
        assert agent.events("reporting_from_journal")[0]["suggestion_id"] == sid
        assert [s["suggestion_id"] for s in starts_before].count(sid) == 1
        assert len(starts) == 1


def test_ambiguous_creates_and_endings_through_faults(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """Answers lost after the server applied a run's create or its end: settled by reading,
    so the budget is still spent exactly, one observation per run."""
    budget = 6
    eid = ai_experiment(api, budget, "faults")
    create, end = r"^/v1/aiexperiments/\d+/training_runs$", r"^/v1/training_runs/\d+$"
    with FaultProxy(server.url, seed=3) as proxy:
        proxy.add("reset_after_forward", method="POST", path=create, times=1)
        proxy.add("status_after_forward", method="POST", path=create, times=1, status=502)
        proxy.add("reset_after_forward", method="PUT", path=end, times=1)
        proxy.add("status_after_forward", method="PUT", path=end, times=1, status=502)
        proxy.add("status", method="GET", times=2, status=503)
        fleet = ["i-0aifault0000001", "i-0aifault0000002"]
        env = {"OPTFLEET_HTTP_ATTEMPTS": "8"}
        agents = run_fleet(server, eid, fleet, workdir, url=proxy.url, env=env)
        assert all(rule.fired == rule.times for rule in proxy.rules), proxy.rules
    runs = assert_exactly_once(api, eid, budget)
    assert {stamped_by(api, eid, run) for run in runs} <= set(fleet)
    assert sum(len(a.events("suggestion_create_ambiguous")) for a in agents) == 2
    assert sum(len(a.events("observation_ambiguous")) for a in agents) == 2


def test_an_orphan_run_is_adopted_once(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = ai_experiment(api, 3, "orphan")
    dead = "i-0aidead00000001"
    orphan = create_run(api, eid, {"instance_id": dead, "lease_expires_at": time.time() - 5000})
    fleet = ["i-0aiadopt0000001", "i-0aiadopt0000002"]
    agents = run_fleet(server, eid, fleet, workdir)
    runs = assert_exactly_once(api, eid, 3)
    adopted = [e for agent in agents for e in agent.events("suggestion_adopted")]
    assert [e["suggestion_id"] for e in adopted] == [str(orphan["suggestion"])]
    run = next(r for r in runs if r["id"] == orphan["id"])
    adopter = stamped_by(api, eid, run)
    assert adopter in fleet
    observation = api.call("GET", f"/experiments/{eid}/observations/{run['observation']}")
    assert observation["metadata"]["adopted_by"] == adopter
    assert observation["metadata"]["previous_instance_ids"] == dead


def test_a_run_whose_owner_dies_at_the_budget_is_still_adopted(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """The budget is spent while a dead worker's run still holds a fresh lease: the fleet waits
    for it instead of leaving it open, and once the lease lapses adopts it, so exactly the
    budget's runs complete."""
    budget = 3
    eid = ai_experiment(api, budget, "late-orphan")
    dead = "i-0ailate00000001"
    orphan = create_run(api, eid, {"instance_id": dead, "lease_expires_at": time.time() + 3600})
    sid = str(orphan["suggestion"])
    fleet = ["i-0ailate00000002", "i-0ailate00000003"]
    env = {"OPTFLEET_CLAIM_SETTLE": "1.5", "OPTFLEET_ADOPT_INTERVAL": "0.5"}
    imdses = [emulator(instance) for instance in fleet]
    agents = [
        AgentProcess(server.url, server.token, eid, imds.url, workdir / name, env=env).start()
        for name, imds in zip(fleet, imdses)
    ]
    try:
        # Both spent the rest of the budget and now wait for the orphan's run.
        wait_until(
            lambda: all(a.events("waiting_for_open_runs") for a in agents),
            60,
            "both agents waiting for the open run",
        )
        assert all(a.proc is not None and a.proc.poll() is None for a in agents)
        assert api.call("GET", f"/aiexperiments/{eid}")["progress"]["remaining_budget"] == 0
        # Its owner is gone for good: the lease lapses.
        lapsed = {**api.suggestion(eid, sid)["metadata"], "lease_expires_at": time.time() - 1}
        api.call("PUT", f"/experiments/{eid}/suggestions/{sid}", json={"metadata": lapsed})
        for agent in agents:
            assert agent.wait(60) == 0, agent.output()
    finally:
        for agent in agents:
            agent.kill()
        for imds in imdses:
            imds.stop()
    runs = assert_exactly_once(api, eid, budget)
    adopted = [e for agent in agents for e in agent.events("suggestion_adopted")]
    assert [e["suggestion_id"] for e in adopted] == [sid]
    run = next(r for r in runs if r["id"] == orphan["id"])
    assert stamped_by(api, eid, run) in fleet
    starts = [s for agent in agents for s in agent.evaluations()]
    assert len(starts) == budget
    # The adopter was told the dead worker's run, not a new one.
    assert [s["run_id"] for s in starts if s["suggestion_id"] == sid] == [str(orphan["id"])]
    for agent in agents:
        assert agent.events("agent_finished")[0]["reason"] == "budget_reached"


def test_progress_lines_are_checkpoints_of_the_same_run(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = ai_experiment(api, 1, "progress", training_monitor={"max_checkpoints": 50})
    me = "i-0aiprogress0001"
    curve = [0.5, 0.6, 0.7]
    (agent,) = run_fleet(
        server,
        eid,
        [me],
        workdir,
        command=EVALUATE_PROGRESS,
        env={"EVAL_MODE": "finish", "EVAL_CURVE": str(curve)},
    )
    assert agent.events("training_run_opened"), agent.output()
    (run,) = assert_exactly_once(api, eid, 1)
    assert stamped_by(api, eid, run) == me
    checkpoints = list(reversed(api.paged(f"/training_runs/{run['id']}/checkpoints")))
    assert [c["step"] for c in checkpoints] == [1, 2, 3]
    assert [c["values"][0]["value"] for c in checkpoints] == curve
    assert all(c["training_run"] == run["id"] for c in checkpoints)
    assert run["values"]["score"]["value"] == curve[-1]


def test_a_run_the_server_stops_early_ends_once(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """The AI experiment's training monitor stops a run through its checkpoints' answers: the
    evaluation is told and stopped, and the run ends with the values of its last step."""
    eid = ai_experiment(api, 1, "stop", training_monitor=CONVERGENCE)
    me = "i-0aistopped00001"
    env = {"EVAL_MODE": "until_stopped", "EVAL_CURVE": str(PLATEAU)}
    (agent,) = run_fleet(server, eid, [me], workdir, command=EVALUATE_PROGRESS, env=env)
    (run,) = assert_exactly_once(api, eid, 1)
    assert run["stopped_at_step"] == 5 and run["stopping_reason"] == "convergence"
    checkpoints = list(reversed(api.paged(f"/training_runs/{run['id']}/checkpoints")))
    assert [c["step"] for c in checkpoints] == [1, 2, 3, 4, 5]
    observation = api.call("GET", f"/experiments/{eid}/observations/{run['observation']}")
    meta = observation["metadata"]
    assert meta["instance_id"] == me and meta["stopped_early"] == 1
    assert meta["stopped_at_step"] == 5 and meta["stopping_reason"] == "convergence"
    assert observation["values"][0]["value"] == PLATEAU[meta["values_at_step"] - 1]
    assert [e["reason"] for e in agent.events("evaluation_stopping")] == ["early_stop"]


def test_values_the_experiment_does_not_take_and_the_kind_setting(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """Metrics the AI experiment lacks make a failed observation saying why (as a Core
    experiment's 400 would); ``OPTFLEET_EXPERIMENT_KIND=ai`` with a Core experiment's id is an
    API error (exit 4)."""
    eid = ai_experiment(api, 1, "named")
    core = api.create_experiment(budget=1)
    with emulator("i-0ainamed0000001") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a", mode="named")
        assert agent.run(OPTFLEET_EXPERIMENT_KIND="ai") == 0, agent.output()
        wrong = AgentProcess(server.url, server.token, core, imds.url, workdir / "b")
        assert wrong.run(OPTFLEET_EXPERIMENT_KIND="ai") == 4, wrong.output()
        assert wrong.events("agent_error")[0]["kind"] == "api"
    (run,) = runs_of(api, eid)
    assert run["state"] == "failed" and run["observation"]
    observation = api.call("GET", f"/experiments/{eid}/observations/{run['observation']}")
    assert observation["failed"] is True
    reason = observation["metadata"]["failure_reason"]
    assert reason.startswith("server rejected the result: Unknown metric name 'a'"), reason
    assert api.call("GET", f"/experiments/{core}")["progress"]["observation_count"] == 0


def test_the_python_api_context_carries_the_run_id(
    server: RunningServer, api: Api, tmp_path: Path
) -> None:
    """``context.run_id`` is the AI experiment's run being evaluated, None for a Core
    experiment (whose evaluations get no OPTFLEET_RUN_ID)."""
    eid = ai_experiment(api, 2, "context")
    core = api.create_experiment(budget=1)
    seen: dict[str, list[tuple[str, str | None]]] = {eid: [], core: []}

    def evaluate_in(experiment: str) -> Any:
        def evaluate(assignments: dict[str, Any], context: Context) -> float:
            seen[experiment].append((context.suggestion_id, context.run_id))
            return 1.0 if experiment == core else float(assignments["x"])

        return evaluate

    with emulator("i-0airunid0000001") as imds:
        for experiment in (eid, core):
            summary = run(
                evaluate_in(experiment),
                experiment=experiment,
                api_url=server.url,
                token=server.token,
                state_dir=tmp_path / experiment,
                imds_endpoint=imds.url,
                environ={"OPTFLEET_ORPHAN_DETECTION": "lease"},
                stream=io.StringIO(),
            )
            assert summary.stop_reason == "budget_reached"
    runs = assert_exactly_once(api, eid, 2)
    assert sorted(seen[eid]) == sorted((str(r["suggestion"]), str(r["id"])) for r in runs)
    assert [run_id for _, run_id in seen[core]] == [None]
