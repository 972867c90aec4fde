"""The instance twin: the fleet's synthesized user data booted by cloud-init under a real
systemd, rebooted and power-cut mid-evaluation, interrupted, adopted and drained.

The scenarios run in order on the same experiment and share twins, as one instance's life does:
twin A boots (test 1), reboots (2), loses power (3) and gets a spot notice (4); twin B boots
while the API is down for its first minute, adopts A's interrupted suggestion (5), has its last
run stopped early by the server (a flat learning curve), which reaches the budget, and
terminates itself through Auto Scaling, then powers off (6). Each asserts from the server's
data and the twin's own journal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import wait_until
from tests.twin import services
from tests.twin.conftest import World
from tests.twin.fleet import group_instances
from tests.twin.machine import Twin

BOOT_S = 300  # bounds for waits, never expectations: a loaded 2-core CI machine is slow
INSTALL_LINE = "optfleet-user-data: installing the optfleet agent"


@pytest.fixture(scope="module", autouse=True)
def timings(world: World) -> Iterator[dict[str, float]]:
    """Measured boot and resume times, written to $OPTFLEET_TWIN_TIMINGS when set (benchmarks)."""
    yield world.timings
    target = os.environ.get("OPTFLEET_TWIN_TIMINGS")
    if target:
        Path(target).write_text(json.dumps(world.timings, indent=2) + "\n")


@pytest.fixture(scope="module")
def twin_a(world: World) -> Twin:
    instance_id = world.fleet.instance_ids[0]
    return world.instance("twin-a", instance_id, lifecycle="spot", hostname="ip-10-9-1-10")


def _one_observation(world: World, sid: str) -> dict[str, Any]:
    observations = [
        o for o in world.api.observations(world.fleet.experiment_id) if str(o["suggestion"]) == sid
    ]
    assert len(observations) == 1, observations
    return dict(observations[0])


def _checkpoint_written(twin: Twin, started: dict[str, Any]) -> None:
    steps = twin.root / str(started["checkpoint_dir"]).lstrip("/") / "steps"
    wait_until(steps.exists, 60, f"{twin.name}: checkpoint of {started['suggestion_id']}")


def test_1_first_boot_runs_the_user_data_and_the_agent(world: World, twin_a: Twin) -> None:
    twin_a.boot()
    started = twin_a.wait_event("evaluation_started", BOOT_S, "first evaluation")
    sid = str(started["suggestion_id"])
    # cloud-init ran the synthesized user data once, as root, at first boot.
    final = twin_a.messages("-u", "cloud-final.service")
    assert sum(INSTALL_LINE in m for m in final) == 1, final[-30:]
    assert any("optfleet-user-data: agent started" in m for m in final), final[-30:]
    status = twin_a.run(["cloud-init", "status", "--long"], check=False).stdout
    assert "status: done" in status, status
    assert (
        twin_a.run(["systemctl", "is-active", "optfleet-agent.service"]).stdout.strip() == "active"
    )
    # The suggestion carries the twin's identity.
    meta = world.api.suggestion(world.fleet.experiment_id, sid)["metadata"]
    assert meta["instance_id"] == twin_a.instance_id
    assert meta["lifecycle"] == "spot"
    assert meta["boot_id"].replace("-", "") == twin_a.boot_ids()[-1]
    assert started["resumed"] == 0
    # The log shipper delivers the agent's journal to the experiment's log group.
    logs = world.aws("logs")

    def shipped() -> bool:
        events = logs.filter_log_events(logGroupName=world.fleet.log_group)["events"]
        return any('"event": "evaluation_started"' in e["message"] for e in events)

    wait_until(shipped, 120, "agent journal in CloudWatch Logs", interval_s=1)
    listed = twin_a.agent_events("open_suggestions_listed")[0]
    [install] = [
        e for e in twin_a.journal("-u", "cloud-final.service") if INSTALL_LINE in e["MESSAGE"]
    ]
    user_data_started = int(install["__REALTIME_TIMESTAMP"]) / 1e6
    world.timings["first_boot_to_first_api_answer_s"] = round(listed["ts"] - twin_a.boots[0], 2)
    world.timings["user_data_start_to_first_api_answer_s"] = round(
        listed["ts"] - user_data_started, 2
    )


def _next_evaluation(twin: Twin) -> dict[str, Any]:
    """The first start of a suggestion this twin has not reported yet (waiting for it)."""
    found: list[dict[str, Any]] = []

    def started() -> bool:
        done = {e["suggestion_id"] for e in twin.agent_events("observation_reported")}
        found[:] = [
            e
            for e in twin.agent_events("evaluation_started")
            if e["resumed"] == 0 and e["suggestion_id"] not in done
        ]
        return bool(found)

    wait_until(started, BOOT_S, f"{twin.name}: next evaluation", interval_s=0.5)
    return found[0]


def test_2_reboot_mid_evaluation_resumes_the_same_suggestion(world: World, twin_a: Twin) -> None:
    first = twin_a.agent_events("evaluation_started")[0]
    sid = str(first["suggestion_id"])
    _checkpoint_written(twin_a, first)
    boots_before = twin_a.boot_ids()
    asked = twin_a.reboot()
    resumed = twin_a.wait_event(
        "evaluation_started",
        BOOT_S,
        "resumed evaluation after reboot",
        suggestion_id=sid,
        resumed=1,
    )
    assert resumed["_boot"] not in boots_before
    assert resumed["checkpoint_dir"] == first["checkpoint_dir"]
    # systemd stopped the agent with SIGTERM; it left the suggestion open for the next boot.
    stopping = [e for e in twin_a.agent_events() if e["_boot"] == boots_before[-1]]
    assert {"event": "stop_signal", "signal": "SIGTERM"}.items() <= next(
        e for e in stopping if e["event"] == "stop_signal"
    ).items()
    assert any(e["event"] == "suggestion_left_open" and e["suggestion_id"] == sid for e in stopping)
    # cloud-init did not run the user data again.
    final = twin_a.messages("-u", "cloud-final.service")
    assert sum(INSTALL_LINE in m for m in final) == 1
    twin_a.release(sid)
    twin_a.wait_event("observation_reported", BOOT_S, "observation after reboot", suggestion_id=sid)
    observation = _one_observation(world, sid)
    assert observation["metadata"]["resumed"] == 1
    assert observation["metadata"]["checkpoint_steps_found"] > 0
    assert observation["metadata"]["instance_id"] == twin_a.instance_id
    world.timings["reboot_to_resumed_evaluation_s"] = round(resumed["ts"] - asked, 2)


def test_3_power_cut_mid_evaluation_resumes_the_same_suggestion(world: World, twin_a: Twin) -> None:
    started = _next_evaluation(twin_a)
    sid = str(started["suggestion_id"])
    _checkpoint_written(twin_a, started)
    boots_before = twin_a.boot_ids()
    cut = twin_a.power_cut()
    assert twin_a.exit_statuses[-1] != 0
    twin_a.boot()
    resumed = twin_a.wait_event(
        "evaluation_started", BOOT_S, "resumed after power cut", suggestion_id=sid, resumed=1
    )
    assert resumed["_boot"] not in boots_before
    assert resumed["checkpoint_dir"] == started["checkpoint_dir"]
    # No orderly stop happened: the last boot ended without the agent's stop line.
    last_boot = [e for e in twin_a.agent_events() if e["_boot"] == boots_before[-1]]
    assert not any(e["event"] == "stop_signal" for e in last_boot)
    twin_a.release(sid)
    twin_a.wait_event(
        "observation_reported", BOOT_S, "observation after power cut", suggestion_id=sid
    )
    observation = _one_observation(world, sid)
    assert observation["metadata"]["resumed"] == 1
    assert observation["metadata"]["checkpoint_steps_found"] > 0
    world.timings["power_cut_to_resumed_evaluation_s"] = round(resumed["ts"] - cut, 2)


def _unit(twin: Twin, *properties: str) -> dict[str, str]:
    shown = twin.run(
        ["systemctl", "show", "optfleet-agent.service", *[f"-p{p}" for p in properties]]
    )
    return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)


def test_4_spot_notice_leaves_the_suggestion_open_and_stops_the_unit(
    world: World, twin_a: Twin
) -> None:
    started = _next_evaluation(twin_a)
    sid = str(started["suggestion_id"])
    _checkpoint_written(twin_a, started)
    services.schedule_spot_interruption(world.netns)
    twin_a.wait_event("interruption_recorded", BOOT_S, "interrupted_at written", suggestion_id=sid)
    twin_a.wait_event(
        "agent_finished", BOOT_S, "agent finished after the notice", reason="spot_interruption"
    )
    wait_until(
        lambda: _unit(twin_a, "ActiveState")["ActiveState"] == "inactive", 60, "agent unit stopped"
    )
    unit = _unit(twin_a, "Result", "ExecMainStatus", "NRestarts")
    assert unit == {"Result": "success", "ExecMainStatus": "0", "NRestarts": "0"}, unit
    left = world.api.suggestion(world.fleet.experiment_id, sid)
    assert left["state"] == "open"
    assert int(left["metadata"]["interrupted_at"]) > 0
    assert left["metadata"]["instance_id"] == twin_a.instance_id
    # AWS then reclaims the instance: terminated in EC2 (the group launches a replacement), and
    # the machine powers off.
    world.aws("ec2").terminate_instances(InstanceIds=[twin_a.instance_id])
    assert twin_a.shutdown() == 0


API_DOWN_S = 60  # scenario 6: the API is unreachable for the first minute of twin B's boot


@pytest.fixture(scope="module")
def twin_b(world: World, twin_a: Twin) -> Twin:
    assert not twin_a.running, "twin A must be gone before B's metadata service takes its place"
    # The Auto Scaling group replaced the terminated instance A: twin B is that replacement.
    [instance_id] = world.netns.call(group_instances, world.fleet.group_name)
    assert instance_id != twin_a.instance_id
    return world.instance("twin-b", instance_id, lifecycle="on-demand", hostname="ip-10-9-2-20")


def test_5_second_twin_boots_with_the_api_down_then_adopts_the_interrupted_one(
    world: World, twin_a: Twin, twin_b: Twin
) -> None:
    [left] = world.api.open_suggestions(world.fleet.experiment_id)
    sid = str(left["id"])
    world.server.stop()
    twin_b.boot()
    # The agent fails against the unreachable API and systemd keeps starting it again.
    twin_b.wait_event("agent_error", BOOT_S, "agent failing while the API is down", kind="api")
    outage_left = twin_b.boots[-1] + API_DOWN_S - time.time()
    if outage_left > 0:
        time.sleep(outage_left)  # the outage's length is the scenario, not a synchronisation
    world.server.start()
    world.server.wait_ready(f"{services.API_URL}/health")
    api_back = time.time()
    adopted = twin_b.wait_event("suggestion_adopted", BOOT_S, "adoption", suggestion_id=sid)
    assert adopted["previous_owner"] == twin_a.instance_id and adopted["interrupted"] is True
    errors = twin_b.agent_events("agent_error")
    assert errors and all(e["kind"] == "api" and e["ts"] < api_back for e in errors), errors
    assert all(e["instance_id"] == twin_b.instance_id for e in errors)
    assert len(twin_b.agent_events("agent_started")) == len(errors) + 1
    assert int(_unit(twin_b, "NRestarts")["NRestarts"]) == len(errors)
    twin_b.release(sid)
    twin_b.wait_event("observation_reported", BOOT_S, "adopted observation", suggestion_id=sid)
    metadata = _one_observation(world, sid)["metadata"]
    assert metadata["instance_id"] == metadata["adopted_by"] == twin_b.instance_id
    assert metadata["previous_instance_ids"] == twin_a.instance_id
    [previous] = json.loads(metadata["owner_history"])
    assert previous["instance_id"] == twin_a.instance_id
    assert previous["lifecycle"] == "spot"
    assert previous["interrupted_at"] == left["metadata"]["interrupted_at"]
    world.timings["api_back_to_adoption_s"] = round(adopted["ts"] - api_back, 2)


def test_6_a_run_stopped_early_reaches_the_budget_then_terminates_and_powers_off(
    world: World, twin_b: Twin
) -> None:
    started = _next_evaluation(twin_b)
    sid = str(started["suggestion_id"])
    twin_b.plateau(sid)  # never released: only the server's stop ends this evaluation
    stopped = twin_b.wait_event("run_stopped_early", BOOT_S, "the server's stop", suggestion_id=sid)
    assert stopped["stopping_reason"] == "convergence"
    metadata = _one_observation(world, sid)["metadata"]
    assert metadata["stopped_early"] == 1
    assert metadata["stopped_at_step"] == 3
    assert metadata["instance_id"] == twin_b.instance_id
    drained = twin_b.wait_event("drained", BOOT_S, "when_done=terminate")
    assert drained["action"] == "terminate"
    assert drained["result"] == f"terminated in auto scaling group {world.fleet.group_name}"
    assert twin_b.agent_events("agent_finished")[-1]["reason"] == "budget_reached"
    ec2 = world.aws("ec2")
    [reservation] = ec2.describe_instances(InstanceIds=[twin_b.instance_id])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated")
    wait_until(
        lambda: _unit(twin_b, "ActiveState")["ActiveState"] == "inactive", 60, "agent unit stopped"
    )
    assert _unit(twin_b, "Result", "ExecMainStatus") == {"Result": "success", "ExecMainStatus": "0"}
    # EC2 shuts a terminated instance down: the twin powers off cleanly.
    assert twin_b.shutdown() == 0
    per_suggestion = world.api.observations_per_suggestion(world.fleet.experiment_id)
    assert sorted(per_suggestion.values()) == [1, 1, 1, 1], per_suggestion
    assert world.api.open_suggestions(world.fleet.experiment_id) == []
