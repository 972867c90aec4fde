"""Orphan hand-off: exactly one adopter per orphan, even when several agents race for it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from emulators.imds import ImdsEmulator, InstanceIdentity
from tests.agent.helpers import AgentProcess, Api, emulator
from tests.agent.helpers import run_fleet as run_agents
from tests.support.ports import wait_until
from tests.support.server import RunningServer
from worker_bootstrap.adoption import with_previous_owner

FAST = {
    "OPTFLEET_CLAIM_SETTLE": "1.5",  # above any request stall of a busy machine
    "OPTFLEET_LEASE_TTL": "600",
    "OPTFLEET_ADOPT_INTERVAL": "0.5",
}


def run_fleet(
    server: RunningServer,
    eid: str,
    ids: list[str],
    workdir: Path,
    env: dict[str, str] | None = None,
) -> list[AgentProcess]:
    return run_agents(server, eid, ids, workdir, env={**FAST, **(env or {})})


@pytest.mark.parametrize("round_", range(3))
def test_racing_adopters_each_orphan_observed_once(
    round_: int, server: RunningServer, api: Api, workdir: Path
) -> None:
    """Leases long expired: every agent may claim every orphan, so claims really race."""
    orphans = 4
    eid = api.create_experiment(budget=orphans)
    dead = f"i-0dead{round_}00000000"
    long_ago = time.time() - 5000
    orphan_ids = [
        str(
            api.create_suggestion(
                eid, {"instance_id": dead, "lease_expires_at": long_ago, "keep": "me"}
            )["id"]
        )
        for _ in range(orphans)
    ]
    ids = [f"i-0racer{round_}{n}000000" for n in range(3)]
    agents = run_fleet(server, eid, ids, workdir)
    per_suggestion = api.observations_per_suggestion(eid)
    assert set(per_suggestion.values()) == {1}, per_suggestion
    assert all(per_suggestion[sid] == 1 for sid in orphan_ids)
    assert api.open_suggestions(eid) == []
    by_suggestion = {str(o["suggestion"]): o for o in api.observations(eid)}
    for sid in orphan_ids:
        meta = by_suggestion[sid]["metadata"]
        assert meta["adopted_by"] == meta["instance_id"] and meta["instance_id"] in ids
        assert meta["previous_instance_ids"] == dead
        suggestion_meta = api.suggestion(eid, sid)["metadata"]
        assert suggestion_meta["keep"] == "me"  # the claim kept the rest of the map
    adopted = sum(len(a.events("suggestion_adopted")) for a in agents)
    assert adopted == orphans


def test_elected_adopter_goes_first(server: RunningServer, api: Api, workdir: Path) -> None:
    """Lease just expired: only the rendezvous winner claims, so nobody loses a claim."""
    eid = api.create_experiment(budget=3)
    recently = time.time() - 1
    for _ in range(3):
        api.create_suggestion(
            eid, {"instance_id": "i-0gone000000001", "lease_expires_at": recently}
        )
    ids = ["i-0elect0000000a"]
    agents = run_fleet(server, eid, ids, workdir)
    assert sum(len(a.events("claim_lost")) for a in agents) == 0
    assert set(api.observations_per_suggestion(eid).values()) == {1}
    assert api.open_suggestions(eid) == []


def test_fresh_lease_is_not_adopted(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    alive = api.create_suggestion(
        eid, {"instance_id": "i-0alive00000001", "lease_expires_at": time.time() + 3600}
    )
    run_fleet(server, eid, ["i-0looker0000001"], workdir)
    assert api.suggestion(eid, str(alive["id"]))["state"] == "open"
    assert str(alive["id"]) not in api.observations_per_suggestion(eid)


def test_spot_interrupted_suggestion_is_handed_over(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=2)
    victim_identity = InstanceIdentity(
        instance_id="i-0spotvictim0001",
        instance_type="g5.xlarge",
        availability_zone="us-east-1b",
        lifecycle="spot",
    )
    with ImdsEmulator(identity=victim_identity) as imds:
        victim = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "victim",
            mode="wait",
            env={**FAST, "EVAL_RELEASE": str(workdir / "no")},
        )
        victim.start()
        wait_until(lambda: len(victim.evaluations()) == 1, 30, "victim evaluation")
        imds.schedule_spot_action(in_s=120)
        assert victim.wait(30) == 0, victim.output()
    [interrupted] = api.open_suggestions(eid)
    sid = str(interrupted["id"])
    assert interrupted["metadata"]["interrupted_at"]
    [heir] = run_fleet(server, eid, ["i-0heir000000001"], workdir)
    [obs] = [o for o in api.observations(eid) if str(o["suggestion"]) == sid]
    assert obs["failed"] is False
    assert obs["metadata"]["adopted_by"] == "i-0heir000000001"
    assert obs["metadata"]["previous_instance_ids"] == "i-0spotvictim0001"
    assert heir.events("suggestion_adopted")[0]["interrupted"] is True
    assert not any(o["failed"] for o in api.observations(eid))
    assert api.open_suggestions(eid) == []
    # The adopter's identity replaced the victim's; the victim's, with its interruption, is kept.
    final = api.suggestion(eid, sid)["metadata"]
    assert (final["instance_type"], final["availability_zone"], final["lifecycle"]) == (
        "c6i.large",
        "us-east-1a",
        "on-demand",
    )
    assert "interrupted_at" not in final
    [previous] = json.loads(final["owner_history"])
    assert previous["instance_id"] == "i-0spotvictim0001"
    assert (previous["instance_type"], previous["availability_zone"]) == ("g5.xlarge", "us-east-1b")
    assert previous["lifecycle"] == "spot"
    assert previous["interrupted_at"] == interrupted["metadata"]["interrupted_at"]
    assert previous["boot_id"] == interrupted["metadata"]["boot_id"]
    assert previous["hostname"] == interrupted["metadata"]["hostname"]
    assert json.loads(obs["metadata"]["owner_history"]) == [previous]


def test_owner_history_keeps_the_newest_owners_within_a_metadata_value() -> None:
    history = ""
    for n in range(20):
        owner = {
            "instance_id": f"i-0owner{n:09d}",
            "instance_type": "c6i.large",
            "boot_id": "b" * 36,
        }
        history = with_previous_owner(history, owner)
    kept = json.loads(history)
    assert len(history) <= 500
    assert kept[-1]["instance_id"] == "i-0owner000000019"
    assert [o["instance_id"] for o in kept] == sorted(o["instance_id"] for o in kept)
    assert json.loads(with_previous_owner("not json", {"instance_id": "i-0x"})) == [
        {"instance_id": "i-0x"}
    ]


def test_crash_right_after_a_claim_then_restart(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    orphan = api.create_suggestion(
        eid, {"instance_id": "i-0deadclaim00001", "lease_expires_at": time.time() - 5000}
    )
    with emulator("i-0claimer000001") as imds:
        agent = AgentProcess(server.url, server.token, eid, imds.url, workdir / "c", env=FAST)
        assert agent.run(OPTFLEET_TEST_CRASH_AT="after_claim") == -9
        claimed = api.suggestion(eid, str(orphan["id"]))
        assert claimed["metadata"]["instance_id"] == "i-0claimer000001"
        assert agent.run() == 0, agent.output()
    assert api.observations_per_suggestion(eid) == {str(orphan["id"]): 1}
    [obs] = api.observations(eid)
    assert obs["metadata"]["previous_instance_ids"] == "i-0deadclaim00001"
