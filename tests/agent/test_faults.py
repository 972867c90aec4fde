"""API faults through a real fault-injecting proxy: nothing lost, nothing duplicated."""

from __future__ import annotations

from pathlib import Path

from tests.agent.helpers import Api, run_fleet
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer

OBS = r"/observations$"
SUG = r"/suggestions$"


def test_faults_on_every_call_kind(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=8)
    with FaultProxy(server.url, seed=7) as proxy:
        # Ambiguous failures on the non-idempotent POSTs: the request reached the server.
        proxy.add("reset_after_forward", method="POST", path=OBS, times=2)
        proxy.add("status_after_forward", method="POST", path=OBS, times=2, status=502)
        proxy.add("reset_after_forward", method="POST", path=SUG, times=2)
        proxy.add("status_after_forward", method="POST", path=SUG, times=1, status=500)
        # Failures before the server saw anything.
        proxy.add("status", method="POST", path=OBS, times=2, status=503)
        proxy.add("drop", method="POST", path=SUG, times=1)
        proxy.add("status", method="GET", times=3, status=429)
        proxy.add("reset", method="GET", times=2)
        proxy.add("delay", times=3, delay_s=0.3)
        # And some random ones on top, replayable through the seed.
        proxy.add("status", times=6, probability=0.15, status=503)
        proxy.add("reset_after_forward", times=4, probability=0.1)
        fleet = [f"i-0fault00000000{n}" for n in range(2)]
        env = {"OPTFLEET_HTTP_ATTEMPTS": "8"}
        agents = run_fleet(server, eid, fleet, workdir, url=proxy.url, env=env)
        fired = {
            rule.kind + ":" + str(rule.method) + ":" + str(rule.path): rule.fired
            for rule in proxy.rules
        }
    # Every deterministic rule fired in full.
    for rule in proxy.rules[:9]:
        assert rule.fired == rule.times, fired
    per_suggestion = api.observations_per_suggestion(eid)
    assert set(per_suggestion.values()) == {1}, per_suggestion
    assert len(per_suggestion) >= 8
    assert api.open_suggestions(eid) == []
    ambiguous = sum(len(a.events("observation_ambiguous")) for a in agents)
    assert ambiguous >= 4
    assert sum(len(a.events("suggestion_create_ambiguous")) for a in agents) >= 3
