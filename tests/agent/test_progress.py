"""Progress lines forwarded as training-run checkpoints, and the server's early stop obeyed
(docs/agent.md, "Progress and early stopping"). Real agents against the real server."""

from __future__ import annotations

import io
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.agent.helpers import HERE, AgentProcess, Api, emulator
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer
from worker_bootstrap import run
from worker_bootstrap.evaluation import Context

EVALUATE = [sys.executable, str(HERE / "evaluate_progress.py")]
# SigOpt's convergence criterion: no improvement within 2 checkpoints once 3 were made. The
# curve 0.5, 0.6, 0.66, 0.66, 0.66 converges at its 5th checkpoint, whatever the timing.
CONVERGENCE = {
    "max_checkpoints": 50,
    "early_stopping_criteria": [
        {"type": "convergence", "name": "flat", "lookback_checkpoints": 2, "min_checkpoints": 3}
    ],
}
PLATEAU = [0.5, 0.6, 0.66, 0.66, 0.66, 0.66, 0.66, 0.66]


def experiment(
    api: Api, monitor: dict[str, Any] | None = None, budget: int = 1, metrics: Any = None
) -> str:
    body: dict[str, Any] = {
        "name": "progress-test",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        "observation_budget": budget,
    }
    if monitor is not None:
        body["training_monitor"] = monitor
    if metrics is not None:
        body["metrics"] = metrics
    return str(api.call("POST", "/experiments", json=body)["id"])


def runs_of(api: Api, eid: str) -> list[dict[str, Any]]:
    return api.paged(f"/experiments/{eid}/training_runs")


def checkpoints_of(api: Api, eid: str, run_id: str) -> list[dict[str, Any]]:
    """The run's checkpoints, oldest first."""
    return list(reversed(api.paged(f"/experiments/{eid}/training_runs/{run_id}/checkpoints")))


def progress_agent(
    url: str, server: RunningServer, eid: str, imds_url: str, state: Path, mode: str, **env: Any
) -> AgentProcess:
    """An agent whose evaluation is evaluate_progress.py in ``mode`` (EVAL_CURVE: PLATEAU)."""
    env = {"EVAL_MODE": mode, "EVAL_CURVE": PLATEAU, **env}
    strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in env.items()}
    return AgentProcess(url, server.token, eid, imds_url, state, command=EVALUATE, env=strings)


def run_to_the_end(
    server: RunningServer, eid: str, instance: str, state: Path, mode: str, **env: Any
) -> AgentProcess:
    """Run one agent on ``instance`` straight against the server until it finishes."""
    with emulator(instance) as imds:
        agent = progress_agent(server.url, server, eid, imds.url, state, mode, **env)
        assert agent.run() == 0, agent.output()
    return agent


def checkpoint_posts(proxy: FaultProxy) -> list[str]:
    return [p for m, p, _, _ in proxy.log if m == "POST" and p.endswith("/checkpoints")]


def test_lines_become_checkpoints_at_their_steps(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    metrics = [{"name": "acc", "objective": "maximize"}, {"name": "loss", "objective": "minimize"}]
    eid = experiment(api, metrics=metrics)
    curve = [
        [{"name": "acc", "value": 0.5}, {"name": "loss", "value": 2.0}],
        [{"name": "acc", "value": 0.7}, {"name": "loss", "value": 1.5}],
        [{"name": "acc", "value": 0.8}, {"name": "loss", "value": 1.2}],
    ]
    me = "i-0progress000001"
    agent = run_to_the_end(
        server, eid, me, workdir / "a", "finish", EVAL_CURVE=curve, EVAL_STEPS=[2, 4, 6]
    )

    [observation] = api.observations(eid)
    assert observation["failed"] is False
    assert "stopped_early" not in observation["metadata"]
    [training_run] = runs_of(api, eid)
    assert training_run["suggestion"] == observation["suggestion"]
    assert training_run["observation"] == observation["id"]
    assert training_run["metadata"]["instance_id"] == me
    assert training_run["metadata"]["lifecycle"] == "on-demand"
    checkpoints = checkpoints_of(api, eid, training_run["id"])
    assert [c["step"] for c in checkpoints] == [2, 4, 6]
    assert [{v["name"]: v["value"] for v in c["values"]} for c in checkpoints] == [
        {"acc": 0.5, "loss": 2.0},
        {"acc": 0.7, "loss": 1.5},
        {"acc": 0.8, "loss": 1.2},
    ]
    assert [c["metadata"] for c in checkpoints] == [{"epoch": 2}, {"epoch": 4}, {"epoch": 6}]
    assert [c["should_stop"] for c in checkpoints] == [False, False, False]
    [summary] = agent.events("progress_summary")
    assert (summary["forwarded"], summary["rejected"]) == (3, {})


def test_a_run_the_server_stops_gets_sigterm_and_one_observation(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = experiment(api, CONVERGENCE, budget=2)
    agent = run_to_the_end(server, eid, "i-0stopped0000001", workdir / "a", "until_stopped")

    observations = api.observations(eid)
    assert len(observations) == 2
    assert set(api.observations_per_suggestion(eid).values()) == {1}
    for observation in observations:
        meta = observation["metadata"]
        assert observation["failed"] is False
        assert meta["stopped_early"] == 1
        assert meta["stopped_at_step"] == 5
        assert meta["stopping_reason"] == "convergence"
        # The progress file's last line is the result: its step and its values.
        assert meta["values_at_step"] >= 5
        assert observation["values"][0]["value"] == PLATEAU[meta["values_at_step"] - 1]
        assert meta["epoch"] == meta["values_at_step"]
    sigterms = agent.evaluations("sigterm")
    assert len(sigterms) == 2
    assert all(s["stop_file"] for s in sigterms)  # told before the SIGTERM came
    assert agent.evaluations("never_stopped") == []
    for training_run in runs_of(api, eid):
        assert training_run["stopped_at_step"] == 5
        assert training_run["stopping_reason"] == "convergence"
        steps = [c["step"] for c in checkpoints_of(api, eid, training_run["id"])]
        assert steps == [1, 2, 3, 4, 5]  # nothing forwarded after the stop
    stopping = agent.events("evaluation_stopping")
    assert [e["reason"] for e in stopping] == ["early_stop", "early_stop"]
    assert agent.events("agent_finished")[0]["stopped_early"] == 2


def test_a_result_file_written_before_the_stop_wins(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = experiment(api, CONVERGENCE)
    agent = run_to_the_end(
        server, eid, "i-0resultwins0001", workdir / "a", "result_then_stop", EVAL_RESULT_AT="4"
    )

    [observation] = api.observations(eid)
    assert observation["failed"] is False
    assert observation["values"][0]["value"] == -1.0
    assert "stopped_early" not in observation["metadata"]
    assert len(agent.evaluations("sigterm")) == 1  # it was stopped all the same
    assert len(agent.events("result_written_before_stop")) == 1


def test_sigkill_between_a_checkpoint_post_and_its_answer(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """The third checkpoint lands, the agent dies before it reads the answer: the restart
    continues after step 3 without posting it again, and one observation results."""
    eid = experiment(api, CONVERGENCE)
    with emulator("i-0crashpost00001") as imds, FaultProxy(server.url) as proxy:
        agent = progress_agent(proxy.url, server, eid, imds.url, workdir / "a", "until_stopped")
        crashed = agent.run(OPTFLEET_TEST_CRASH_AT="after_checkpoint_post@3")
        assert crashed == -signal.SIGKILL, agent.output()
        [training_run] = runs_of(api, eid)
        assert training_run["checkpoint_count"] == 3
        assert agent.run() == 0, agent.output()

    [observation] = api.observations(eid)
    assert observation["metadata"]["stopped_early"] == 1
    assert observation["metadata"]["stopped_at_step"] == 5
    assert observation["metadata"]["resumed"] == 1
    steps = [c["step"] for c in checkpoints_of(api, eid, training_run["id"])]
    assert steps == [1, 2, 3, 4, 5]
    assert len(checkpoint_posts(proxy)) == 5  # none posted twice
    [opened] = agent.events("training_run_opened")[1:]
    assert opened["continues_after_step"] == 3
    assert api.open_suggestions(eid) == []
    assert list((workdir / "a" / "journal").iterdir()) == []


def test_a_stop_decided_before_a_crash_is_not_evaluated_again(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """The fifth checkpoint's answer (stop) is lost with the agent: after the restart the run
    says it was stopped, so the observation is made from the progress file at once."""
    eid = experiment(api, CONVERGENCE)
    with emulator("i-0crashstop00001") as imds:
        agent = progress_agent(server.url, server, eid, imds.url, workdir / "a", "until_stopped")
        crashed = agent.run(OPTFLEET_TEST_CRASH_AT="after_checkpoint_post@5")
        assert crashed == -signal.SIGKILL, agent.output()
        assert agent.run() == 0, agent.output()

    [observation] = api.observations(eid)
    assert observation["metadata"]["stopped_early"] == 1
    assert observation["metadata"]["stopped_at_step"] == 5
    assert len(agent.evaluations("start")) == 1
    [skipped] = agent.events("evaluation_skipped")
    assert skipped["stopping_reason"] == "convergence"


def test_an_adopter_continues_the_same_run(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = experiment(api, CONVERGENCE)
    with emulator("i-0firstowner0001") as first:
        owner = progress_agent(server.url, server, eid, first.url, workdir / "a", "until_stopped")
        assert owner.run(OPTFLEET_TEST_CRASH_AT="after_checkpoint_post@3") == -signal.SIGKILL
    [suggestion] = api.open_suggestions(eid)
    sid = str(suggestion["id"])
    # The first owner is gone for good: its lease lapsed long ago.
    lapsed = {**suggestion["metadata"], "lease_expires_at": time.time() - 5000}
    api.call("PUT", f"/experiments/{eid}/suggestions/{sid}", json={"metadata": lapsed})
    adopter = run_to_the_end(
        server,
        eid,
        "i-0adopter0000001",
        workdir / "b",
        "until_stopped",
        OPTFLEET_CLAIM_SETTLE="1.5",
    )

    [observation] = api.observations(eid)
    assert observation["metadata"]["adopted_by"] == "i-0adopter0000001"
    assert observation["metadata"]["stopped_at_step"] == 5
    [training_run] = runs_of(api, eid)  # the same run, created by the first owner
    assert training_run["metadata"]["instance_id"] == "i-0firstowner0001"
    steps = [c["step"] for c in checkpoints_of(api, eid, training_run["id"])]
    assert steps == [1, 2, 3, 4, 5]
    [opened] = adopter.events("training_run_opened")
    assert opened["continues_after_step"] == 3
    [summary] = adopter.events("progress_summary")
    assert summary["skipped"] == 3 and summary["forwarded"] == 2


def test_a_server_without_training_runs_is_asked_once_and_stops_nothing(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = experiment(api, {"max_checkpoints": 2}, budget=2)
    with emulator("i-0plainsigopt001") as imds, FaultProxy(server.url) as proxy:
        proxy.add("status", path=r"/training_runs", status=404, times=None)
        agent = progress_agent(proxy.url, server, eid, imds.url, workdir / "a", "finish")
        assert agent.run() == 0, agent.output()

    asked = [(m, p) for m, p, _, _ in proxy.log if "/training_runs" in p]
    assert asked == [("POST", f"/v1/experiments/{eid}/training_runs")]
    assert len(agent.events("training_runs_unsupported")) == 1
    observations = api.observations(eid)
    assert len(observations) == 2
    for observation in observations:
        assert observation["failed"] is False
        assert observation["values"][0]["value"] == PLATEAU[-1]
        assert "stopped_early" not in observation["metadata"]
    assert agent.evaluations("sigterm") == []


def test_bad_lines_are_logged_once_and_the_evaluation_goes_on(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = experiment(api)
    lines = [
        "not json",
        '{"step": 1, "value": NaN}',
        '{"step": 2, "value": 0.5, "metadata": {"epoch": 2}}',
        '{"step": 1, "value": 0.6}',
        '{"step": 2, "value": 0.7}',
        '{"step": 3, "values": [{"name": "nope", "value": 1}]}',
        '{"step": 4, "value": 0.8, "extra": true}',
        '{"step": 5, "value": 0.9}',
        "{{ also not json",
    ]
    agent = run_to_the_end(
        server, eid, "i-0badlines000001", workdir / "a", "raw", EVAL_LINES=lines, EVAL_RESULT="0.95"
    )

    [observation] = api.observations(eid)
    assert observation["failed"] is False
    assert observation["values"][0]["value"] == 0.95
    [training_run] = runs_of(api, eid)
    assert [c["step"] for c in checkpoints_of(api, eid, training_run["id"])] == [2, 5]
    rejected = agent.events("progress_line_rejected")
    kinds = [e["kind"] for e in rejected]
    assert sorted(kinds) == [
        "invalid",
        "non_monotonic",
        "not_finite",
        "not_json",
        "server_rejected",
    ]
    [summary] = agent.events("progress_summary")
    assert summary["rejected"] == {
        "not_json": 2,
        "not_finite": 1,
        "non_monotonic": 2,
        "server_rejected": 1,
        "invalid": 1,
    }
    assert summary["forwarded"] == 2


def test_python_api_report_returns_true_once_the_run_is_stopped(
    server: RunningServer, api: Api, tmp_path: Path
) -> None:
    eid = experiment(api, CONVERGENCE)
    answers: list[tuple[int, bool]] = []

    def evaluate(assignments: dict[str, Any], context: Context) -> Any:
        for step in range(1, 200):
            value = PLATEAU[min(step, len(PLATEAU)) - 1]
            stop = context.report(step, value, metadata={"epoch": step})
            answers.append((step, stop))
            if stop:
                return value
            context.stop_requested.wait(0.05)  # one "epoch"
        raise RuntimeError("never stopped")

    with emulator("i-0pyreport000001") as imds:
        summary = run(
            evaluate,
            experiment=eid,
            api_url=server.url,
            token=server.token,
            state_dir=tmp_path / "state",
            imds_endpoint=imds.url,
            environ={"OPTFLEET_ORPHAN_DETECTION": "lease"},
            stream=io.StringIO(),
        )
    assert summary.evaluations == 1 and summary.stopped_early == 1
    assert answers[-1][1] is True and not any(stop for _, stop in answers[:-1])
    [observation] = api.observations(eid)
    meta = observation["metadata"]
    assert (meta["stopped_early"], meta["stopped_at_step"]) == (1, 5)
    assert meta["stopping_reason"] == "convergence"
    assert observation["values"][0]["value"] == 0.66


def test_checkpoints_beyond_the_runs_limit_are_logged_once(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """Without a training_monitor the server takes 200 checkpoints a run and then answers 403:
    the agent forwards no more and the evaluation finishes as if nothing happened."""
    eid = experiment(api)
    agent = run_to_the_end(
        server,
        eid,
        "i-0toomany0000001",
        workdir / "a",
        "finish",
        EVAL_CURVE=[0.25] * 203,
        EVAL_STEP_S="0",
    )
    [observation] = api.observations(eid)
    assert observation["failed"] is False and observation["values"][0]["value"] == 0.25
    [training_run] = runs_of(api, eid)
    assert training_run["checkpoint_count"] == 200
    [rejected] = agent.events("progress_line_rejected")
    assert (rejected["kind"], rejected["step"]) == ("run_closed", 201)
    [summary] = agent.events("progress_summary")
    assert (summary["forwarded"], summary["rejected"]) == (200, {"run_closed": 1})
