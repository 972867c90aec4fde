"""Resume anywhere: real agents, the real server, moto's S3 in server mode on loopback. An
evaluation interrupted by a spot notice continues on the adopter from the snapshot the victim
uploaded; an instance that comes back after being adopted changes nothing; a checkpoint over the
size cap is not uploaded; an owner restarting keeps its newer local checkpoint."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from emulators.imds import ImdsEmulator, InstanceIdentity
from tests.agent.helpers import HERE, AgentProcess, Api, emulator, run_fleet
from tests.agent.test_aws import aws_env, client, moto  # noqa: F401 - moto is a fixture
from tests.support.ports import wait_until
from tests.support.server import RunningServer

SNAPSHOT_EVAL = [sys.executable, str(HERE / "snapshot_evaluate.py")]
FAST = {
    "OPTFLEET_CLAIM_SETTLE": "1.5",
    "OPTFLEET_ADOPT_INTERVAL": "0.5",
    "OPTFLEET_PRICING": "off",
    "EVAL_STEP_S": "0.05",
}


def new_bucket(moto: str) -> str:  # noqa: F811 - the fixture's value
    name = f"ckpt-{time.time_ns()}"
    client(moto, "s3").create_bucket(Bucket=name)
    return name


def snapshot_env(moto: str, bucket: str, **extra: str) -> dict[str, str]:  # noqa: F811
    return {**FAST, **aws_env(moto), "OPTFLEET_CHECKPOINT_S3": f"s3://{bucket}/ckpt", **extra}


def objects(moto: str, bucket: str) -> dict[str, bytes]:  # noqa: F811
    s3 = client(moto, "s3")
    found = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {str(o["Key"]): s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found}


def nothing_left(moto: str, bucket: str, eid: str, sid: str) -> bool:  # noqa: F811
    """None of the suggestion's snapshots is left in the bucket."""
    return not [k for k in objects(moto, bucket) if k.startswith(f"ckpt/{eid}/{sid}/")]


def reached(agent: AgentProcess, event: str, step: int) -> bool:
    return any(e.get("step") == step for e in agent.evaluations(event))


def uploaded(agent: AgentProcess, step: int) -> bool:
    return any(e.get("step") == step for e in agent.events("snapshot_uploaded"))


def agent(
    server: RunningServer, eid: str, imds: ImdsEmulator, state: Path, env: dict[str, str]
) -> AgentProcess:
    return AgentProcess(
        server.url, server.token, eid, imds.url, state, env=env, command=SNAPSHOT_EVAL
    )


def snapshot_then_hold(evaluating: AgentProcess, release: Path, step: int) -> None:
    """Start the agent; its evaluation holds at step 1 until that snapshot is up, then runs on
    to hold at ``step``: with a long interval, S3 holds step 1 and the disk ``step``."""
    evaluating.start(EVAL_HOLD_AT=f"1,{step}", EVAL_RELEASE=str(release))
    wait_until(lambda: uploaded(evaluating, 1), 60, "the first snapshot")
    Path(f"{release}-1").touch()
    wait_until(lambda: reached(evaluating, "holding", step), 60, f"the evaluation at {step}")


def test_a_spot_interrupted_evaluation_continues_on_the_adopter_from_its_snapshot(
    moto: str,  # noqa: F811
    server: RunningServer,
    api: Api,
    workdir: Path,
) -> None:
    bucket = new_bucket(moto)
    eid = api.create_experiment(budget=1)
    release = workdir / "release"
    # One snapshot per hour at most: the first mark goes up, the next only with the notice.
    env = snapshot_env(moto, bucket, OPTFLEET_CHECKPOINT_INTERVAL="3600")
    identity = InstanceIdentity(instance_id="i-0spotckpt00001", lifecycle="spot")
    with ImdsEmulator(identity=identity) as imds:
        victim = agent(server, eid, imds, workdir / "victim", env)
        snapshot_then_hold(victim, release, 6)
        imds.schedule_spot_action(in_s=120)
        assert victim.wait(60) == 0, victim.output()
    assert [e["step"] for e in victim.events("snapshot_uploaded")] == [1, 6], victim.output()
    names = [e["event"] for e in victim.events()]
    assert names.index("interruption_recorded") > max(
        i for i, name in enumerate(names) if name == "snapshot_uploaded"
    )  # the snapshot was in S3 before the suggestion was offered to others
    [sid] = [str(s["id"]) for s in api.open_suggestions(eid)]

    [heir] = run_fleet(server, eid, ["i-0heirckpt00001"], workdir, env=env, command=SNAPSHOT_EVAL)
    [obs] = api.observations(eid)
    meta = obs["metadata"]
    assert obs["values"][0]["value"] == 10.0
    assert (meta["started_from"], meta["resumed_from_step"]) == (6, 6)
    assert meta["resumed_from_instance"] == "i-0spotckpt00001"
    assert (meta["resumed"], meta["attempt"], meta["adopted_by"]) == (1, 2, "i-0heirckpt00001")
    assert meta["resumed_snapshot_age_s"] >= 0 and meta["checkpoint_restore_bytes"] > 0
    [start] = heir.evaluations("start")
    assert (start["started_from"], start["resumed"], start["attempt"]) == (6, "1", "2")
    assert heir.events("snapshot_restored")[0]["from_instance"] == "i-0spotckpt00001"
    assert heir.events("snapshots_deleted")
    assert nothing_left(moto, bucket, eid, sid)


def test_an_instance_back_after_being_adopted_changes_nothing(
    moto: str,  # noqa: F811
    server: RunningServer,
    api: Api,
    workdir: Path,
) -> None:
    """The owner freezes (a partition, a stalled VM) past its lease; another instance adopts
    from its snapshot and reports; the owner thaws with a finished result and drops it."""
    bucket = new_bucket(moto)
    eid = api.create_experiment(budget=1)
    env = snapshot_env(moto, bucket, OPTFLEET_CHECKPOINT_INTERVAL="0", OPTFLEET_LEASE_TTL="3")
    with emulator("i-0frozenckpt001") as imds:
        release = workdir / "release"
        frozen = agent(
            server,
            eid,
            imds,
            workdir / "frozen",
            {**env, "EVAL_HOLD_AT": "4", "EVAL_RELEASE": str(release)},
        )
        frozen.start()
        try:
            wait_until(lambda: uploaded(frozen, 4), 60, "the snapshot at step 4")
            assert frozen.proc is not None
            os.kill(frozen.proc.pid, signal.SIGSTOP)
            [suggestion] = api.open_suggestions(eid)
            sid = str(suggestion["id"])

            def lapsed() -> bool:
                lease = api.suggestion(eid, sid)["metadata"]["lease_expires_at"]
                return float(lease) < time.time()

            wait_until(lapsed, 30, "the frozen owner's lease to lapse")
            run_fleet(server, eid, ["i-0thawheir00001"], workdir, env=env, command=SNAPSHOT_EVAL)
            # Its evaluation, which kept running, finishes while its agent is still frozen.
            Path(f"{release}-4").touch()
            wait_until(lambda: reached(frozen, "done", 10), 30, "the frozen owner's evaluation")
        finally:
            if frozen.proc is not None:
                os.kill(frozen.proc.pid, signal.SIGCONT)
        assert frozen.wait(60) == 0, frozen.output()
    per_suggestion = api.observations_per_suggestion(eid)
    assert per_suggestion[sid] == 1 and set(per_suggestion.values()) == {1}, per_suggestion
    [obs] = [o for o in api.observations(eid) if str(o["suggestion"]) == sid]
    assert obs["metadata"]["instance_id"] == "i-0thawheir00001"
    assert (obs["metadata"]["resumed_from_step"], obs["metadata"]["started_from"]) == (4, 4)
    # It drops its result, or (frozen between reading and writing its lease) posts it and the
    # server refuses an observation of a closed suggestion.
    settled = ("result_dropped", "ownership_lost", "observation_rejected_closed")
    assert [e for e in frozen.events() if e["event"] in settled and e["suggestion_id"] == sid]
    assert nothing_left(moto, bucket, eid, sid)


def test_a_checkpoint_over_the_size_cap_is_not_uploaded(
    moto: str,  # noqa: F811
    server: RunningServer,
    api: Api,
    workdir: Path,
) -> None:
    bucket = new_bucket(moto)
    eid = api.create_experiment(budget=1)
    env = snapshot_env(
        moto, bucket, OPTFLEET_CHECKPOINT_INTERVAL="0", OPTFLEET_CHECKPOINT_MAX_BYTES="1K"
    )
    with emulator("i-0bigckpt000001", lifecycle="spot") as imds:
        big = agent(
            server,
            eid,
            imds,
            workdir / "big",
            {**env, "EVAL_HOLD_AT": "3", "EVAL_PAD_BYTES": "5000"},
        )
        big.start()
        wait_until(lambda: reached(big, "holding", 3), 60, "the evaluation at step 3")
        imds.schedule_spot_action(in_s=120)
        assert big.wait(60) == 0, big.output()
    [too_large] = big.events("snapshot_too_large")  # said once, however many marks
    assert too_large["max_bytes"] == 1024 and too_large["bytes"] > 5000
    assert too_large["setting"] == "OPTFLEET_CHECKPOINT_MAX_BYTES"
    assert objects(moto, bucket) == {}
    [heir] = run_fleet(server, eid, ["i-0smallheir0001"], workdir, env=env, command=SNAPSHOT_EVAL)
    [obs] = api.observations(eid)
    assert obs["metadata"]["started_from"] == 0  # from zero, as without snapshots
    assert "resumed_from_instance" not in obs["metadata"]
    assert heir.evaluations("start")[0]["resumed"] == "0"


def test_an_owner_restarting_keeps_its_newer_local_checkpoint(
    moto: str,  # noqa: F811
    server: RunningServer,
    api: Api,
    workdir: Path,
) -> None:
    bucket = new_bucket(moto)
    eid = api.create_experiment(budget=1)
    release = workdir / "release"
    env = snapshot_env(moto, bucket, OPTFLEET_CHECKPOINT_INTERVAL="3600")
    with emulator("i-0rebootckpt001") as imds:
        owner = agent(server, eid, imds, workdir / "owner", env)
        snapshot_then_hold(owner, release, 5)
        owner.kill()  # SIGKILL: the snapshot in S3 is of step 1, the local one of step 5
        assert owner.run(60, EVAL_HOLD_AT="") == 0, owner.output()
    [obs] = api.observations(eid)
    assert obs["metadata"]["started_from"] == 5
    assert "resumed_from_instance" not in obs["metadata"]
    assert owner.events("snapshot_not_needed")
    assert [e["started_from"] for e in owner.evaluations("start")] == [0, 5]
