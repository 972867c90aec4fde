"""The lease: renewed while evaluating so a live owner is never taken for dead; an owner that
finds its suggestion taken over stops and reports nothing."""

from __future__ import annotations

import time
from pathlib import Path

from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.ports import wait_until
from tests.support.server import RunningServer

SHORT_LEASE = {"OPTFLEET_LEASE_TTL": "1.5", "OPTFLEET_CLAIM_SETTLE": "0.3"}


def test_lease_is_renewed_while_evaluating(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    release = workdir / "release"
    with emulator("i-0leaseholder001") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            mode="wait",
            env={**SHORT_LEASE, "EVAL_RELEASE": str(release)},
        )
        agent.start()
        wait_until(lambda: len(agent.evaluations()) == 1, 30, "evaluation start")
        sid = agent.evaluations()[0]["suggestion_id"]
        leases: list[float] = []

        def renewed_three_times() -> bool:
            lease = float(api.suggestion(eid, sid)["metadata"]["lease_expires_at"])
            if not leases or lease != leases[-1]:
                leases.append(lease)
            return len(leases) >= 4

        wait_until(renewed_three_times, 30, "three lease renewals")
        assert leases == sorted(leases)
        release.write_text("go")
        assert agent.wait(60) == 0, agent.output()
    [obs] = api.observations(eid)
    assert str(obs["suggestion"]) == sid and obs["failed"] is False
    assert obs["metadata"]["duration_s"] > 1.5  # it outlived one lease, and kept it


def test_owner_that_lost_its_suggestion_stops_and_reports_nothing(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0loser000000001") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            mode="wait",
            env={**SHORT_LEASE, "EVAL_RELEASE": str(workdir / "never"), "OPTFLEET_ADOPT": "0"},
        )
        agent.start()
        wait_until(lambda: len(agent.evaluations()) == 1, 30, "evaluation start")
        sid = agent.evaluations()[0]["suggestion_id"]
        # Someone else claims it (as an adopter would after a network partition).
        taken = {
            **api.suggestion(eid, sid)["metadata"],
            "instance_id": "i-0taker00000001",
            "adopted_by": "i-0taker00000001",
            "claim_nonce": "feedface",
            "lease_expires_at": time.time() + 3600,
        }
        api.call("PUT", f"/experiments/{eid}/suggestions/{sid}", json={"metadata": taken})
        wait_until(lambda: bool(agent.events("ownership_lost")), 30, "ownership loss noticed")
        agent.signal()
        assert agent.wait(60) == 0, agent.output()
    assert api.observations(eid) == []
    assert api.suggestion(eid, sid)["metadata"]["instance_id"] == "i-0taker00000001"
    assert agent.events("ownership_lost")[0]["suggestion_id"] == sid
