"""SIGKILL at every step, then restart: exactly one observation per suggestion, nothing open.

The kill points are deterministic through the test hook OPTFLEET_TEST_CRASH_AT (docs/agent.md).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer

STEPS = ["after_suggestion_create", "during_evaluation", "after_evaluation", "after_report"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_restart(
    step: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=3)
    me = f"i-0crash{STEPS.index(step)}0000000"
    with emulator(me) as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a")
        # Crash on the second suggestion, so one is finished before and one after.
        assert agent.run(OPTFLEET_TEST_CRASH_AT=f"{step}@2") == -signal.SIGKILL, agent.output()
        crashed_on = [s for s in api.open_suggestions(eid)]
        if step == "after_report":
            assert crashed_on == []  # the observation landed; only the journal lags
        else:
            assert [s["metadata"]["instance_id"] for s in crashed_on] == [me]
        starts_before = agent.evaluations()
        assert agent.run() == 0, agent.output()

    per_suggestion = api.observations_per_suggestion(eid)
    assert set(per_suggestion.values()) == {1}, per_suggestion
    assert len(per_suggestion) == 3
    assert api.open_suggestions(eid) == []
    assert list((workdir / "a" / "journal").iterdir()) == []

    starts = agent.evaluations()
    if step in ("after_suggestion_create", "during_evaluation"):
        resumed_sid = str(crashed_on[0]["id"])
        resumed = [s for s in starts if s["suggestion_id"] == resumed_sid]
        # during_evaluation: it started once, was killed, and resumed with the same checkpoint.
        expected_starts = 2 if step == "during_evaluation" else 1
        assert len(resumed) == expected_starts, starts
        assert len({s["checkpoint_dir"] for s in resumed}) == 1
        obs = next(o for o in api.observations(eid) if str(o["suggestion"]) == resumed_sid)
        if step == "during_evaluation":
            assert resumed[-1]["resumed"] == "1"
            assert resumed[-1]["had_checkpoint"] == ["progress"]
            assert resumed[-1]["attempt"] == "2"
            assert agent.events("suggestion_resumed")[0]["suggestion_id"] == resumed_sid
            assert obs["metadata"]["resumed"] == 1
        else:
            # Created, never started: its first start after the restart is no resume.
            assert resumed[-1]["resumed"] == "0"
            assert resumed[-1]["attempt"] == "1"
            assert agent.events("suggestion_resumed") == []
            assert agent.events("suggestion_picked_up")[0]["suggestion_id"] == resumed_sid
            assert obs["metadata"]["resumed"] == 0
    if step in ("after_evaluation", "after_report"):
        # The result was computed before the crash: never recomputed after the restart.
        crashed_sid = starts_before[-1]["suggestion_id"]
        assert [s["suggestion_id"] for s in starts].count(crashed_sid) == 1
    if step == "after_evaluation":
        assert agent.events("reporting_from_journal")[0]["suggestion_id"] == crashed_sid


def test_foreign_open_suggestions_are_never_touched(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=2)
    foreign_meta = {
        "instance_id": "i-0someoneelse0001",
        "lease_expires_at": 4102444800,
        "custom": "keep me",
    }
    foreign = api.create_suggestion(eid, foreign_meta)
    unowned = api.create_suggestion(eid, {"note": "created by hand"})
    with emulator("i-0mine0000000001") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "a")
        assert agent.run() == 0, agent.output()
    after = api.suggestion(eid, str(foreign["id"]))
    assert after["state"] == "open"
    assert after["metadata"] == foreign_meta
    assert api.suggestion(eid, str(unowned["id"]))["metadata"] == {"note": "created by hand"}
    touched = {e["suggestion_id"] for e in agent.events() if e["suggestion_id"]}
    assert str(foreign["id"]) not in touched and str(unowned["id"]) not in touched
    assert api.observations_per_suggestion(eid).get(str(foreign["id"])) is None


def test_resume_lists_all_pages_oldest_first(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    """Foreign open suggestions over several pages (page size 5), two of mine among them."""
    eid = api.create_experiment(budget=2)
    me = "i-0pages000000001"
    far = 4102444800
    mine_old = api.create_suggestion(eid, {"instance_id": me})
    for n in range(12):
        api.create_suggestion(eid, {"instance_id": f"i-0other{n:09d}", "lease_expires_at": far})
    api.create_suggestion(eid, {"instance_id": None})  # null values are dropped: no owner
    mine_new = api.create_suggestion(eid, {"instance_id": me})
    with emulator(me) as imds, FaultProxy(server.url) as proxy:
        agent = AgentProcess(
            proxy.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            env={"OPTFLEET_ADOPT": "false", "OPTFLEET_PAGE_LIMIT": "5"},
        )
        assert agent.run() == 0, agent.output()
    # Made by hand, never started here: picked up (not resumed), oldest first.
    picked_up = [e["suggestion_id"] for e in agent.events("suggestion_picked_up")]
    assert picked_up == [str(mine_old["id"]), str(mine_new["id"])]
    listed = agent.events("open_suggestions_listed")[0]
    assert listed["open"] == 15 and listed["mine"] == 2
    first_listing = [
        path for method, path, _, _ in proxy.log if method == "GET" and "/suggestions?" in path
    ][:3]
    assert "before=" not in first_listing[0]
    assert all("before=" in path for path in first_listing[1:])
    assert len(api.open_suggestions(eid)) == 13
