"""SIGTERM to the agent and spot interruption notices: the evaluation checkpoints, nothing fails."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.ports import wait_until
from tests.support.server import RunningServer


def test_sigterm_forwards_to_the_evaluation_and_leaves_it_open(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    release = workdir / "release"
    with emulator("i-0sigterm00000001") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            mode="wait",
            env={"EVAL_RELEASE": str(release)},
        )
        agent.start()
        wait_until(lambda: len(agent.evaluations()) == 1, 30, "evaluation start")
        agent.signal(signal.SIGTERM)
        assert agent.wait(30) == 0, agent.output()
        [started] = agent.evaluations()
        assert agent.evaluations("sigterm"), "the evaluation got SIGTERM to checkpoint"
        [open_one] = api.open_suggestions(eid)
        assert str(open_one["id"]) == started["suggestion_id"]
        assert api.observations(eid) == []
        assert "interrupted_at" not in open_one["metadata"]
        assert agent.events("suggestion_left_open")[0]["reason"] == "agent_stopping"
        journal = list((workdir / "a" / "journal").iterdir())
        assert len(journal) == 1  # still journaled for the next start
        # Next boot: the same suggestion resumes with its checkpoint.
        release.write_text("go")
        assert agent.run() == 0, agent.output()
    resumed = agent.evaluations()[-1]
    assert resumed["suggestion_id"] == started["suggestion_id"]
    assert resumed["resumed"] == "1"
    assert "sigterm" in resumed["had_checkpoint"]
    assert api.observations_per_suggestion(eid) == {started["suggestion_id"]: 1}


def test_spot_notice_interrupts_and_records_interrupted_at(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=3)
    with emulator("i-0spot0000000001", lifecycle="spot") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            mode="wait",
            env={"EVAL_RELEASE": str(workdir / "never")},
        )
        agent.start()
        wait_until(lambda: len(agent.evaluations()) == 1, 30, "evaluation start")
        # Metadata written by someone else meanwhile must survive the read-modify-write.
        sid = agent.evaluations()[0]["suggestion_id"]
        current = api.suggestion(eid, sid)["metadata"]
        api.call(
            "PUT",
            f"/experiments/{eid}/suggestions/{sid}",
            json={"metadata": {**current, "operator_note": "watch this one"}},
        )
        imds.schedule_spot_action(action="terminate", in_s=120)
        assert agent.wait(30) == 0, agent.output()
    assert agent.evaluations("sigterm")
    [left] = api.open_suggestions(eid)
    assert str(left["id"]) == sid
    meta = left["metadata"]
    assert int(meta["interrupted_at"]) > 0
    assert meta["operator_note"] == "watch this one"
    assert meta["instance_id"] == "i-0spot0000000001"
    assert api.observations(eid) == []  # not reported as a failure
    assert agent.events("agent_finished")[0]["reason"] == "spot_interruption"
    assert agent.events("spot_interruption_notice")[0]["action"] == "terminate"


def test_experiment_deleted_while_evaluating(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=5)
    release = workdir / "release"
    with emulator("i-0deleted0000001") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            mode="wait",
            env={"EVAL_RELEASE": str(release)},
        )
        agent.start()
        wait_until(lambda: len(agent.evaluations()) == 1, 30, "evaluation start")
        api.call("DELETE", f"/experiments/{eid}")
        release.write_text("go")
        assert agent.wait(60) == 0, agent.output()
        # A restart on the deleted experiment stops at once, cleanly.
        assert agent.run() == 0, agent.output()
    finished = agent.events("agent_finished")
    assert [f["reason"] for f in finished] == ["experiment_deleted", "experiment_deleted"]
    assert len(agent.evaluations()) == 1
