"""Claim-and-verify in isolation: many claimants start together on one orphan, one wins."""

from __future__ import annotations

import threading
import time

import pytest

from tests.agent.helpers import Api
from tests.support.server import RunningServer
from worker_bootstrap.adoption import Claimer, LeaseDetector, OrphanView
from worker_bootstrap.api_client import ApiClient


@pytest.mark.parametrize("round_", range(4))
def test_exactly_one_claimant_keeps_its_nonce(round_: int, server: RunningServer,
                                             api: Api) -> None:  # fmt: skip
    eid = api.create_experiment(budget=10)
    orphan = api.create_suggestion(
        eid, {"instance_id": "i-0deadrace00001", "lease_expires_at": time.time() - 5000}
    )
    sid = str(orphan["id"])
    claimants = [f"i-0claim{round_}{n:08d}" for n in range(6)]
    barrier = threading.Barrier(len(claimants))
    won: dict[str, bool] = {}

    def claim(me: str) -> None:
        claimer = Claimer(ApiClient(server.url, server.token), eid, me, 600, settle_s=2.0)
        detector = LeaseDetector(600)
        barrier.wait(timeout=30)  # start together: the reads race the writes
        won[me] = claimer.claim(sid, detector, OrphanView(dead_owners=set(), live={me})) is not None

    threads = [threading.Thread(target=claim, args=(me,)) for me in claimants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == len(claimants)
    winners = [me for me, ok in won.items() if ok]
    assert len(winners) == 1, won
    final = api.suggestion(eid, sid)["metadata"]
    assert final["instance_id"] == winners[0] == final["adopted_by"]
    assert final["previous_instance_ids"] == "i-0deadrace00001"
