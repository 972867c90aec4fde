"""The server is SIGKILLed mid-run and restarted: no acknowledged write lost, agents carry on."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.agent.helpers import Api
from tests.reliability.agents import assert_exactly_once, start_agents
from tests.reliability.conftest import TOKEN
from tests.reliability.load_sim import (
    LoadConfig,
    LoadSimulator,
    create_discrete_experiment,
    reconcile,
)
from tests.support.ports import wait_until
from tests.support.server import RunningServer

# Enough retries (jittered, capped at 5 s) to outlast a server restart on a busy machine.
AGENT_ENV = {"OPTFLEET_HTTP_ATTEMPTS": "30"}


def test_sigkill_and_restart_under_agents_and_load(
    sqlite_server: RunningServer, tmp_path: Path
) -> None:
    api = Api(sqlite_server.url, TOKEN)
    eid = api.create_experiment(budget=30, name="server-crash")
    load_eid = create_discrete_experiment(sqlite_server.url, TOKEN)
    # Direct writers alongside the agents: their ledger is what "acknowledged" means.
    sim = LoadSimulator(
        sqlite_server.url,
        TOKEN,
        load_eid,
        LoadConfig(workers=10, duration_s=600, attempts=40, request_timeout_s=20, seed=2),
    )
    load = threading.Thread(target=sim.run, daemon=True)
    load.start()
    agents, imdses = start_agents(sqlite_server.url, TOKEN, eid, tmp_path, 4, "srvkill", AGENT_ENV)
    try:
        wait_until(
            lambda: len(api.observations(eid)) >= 6 and sim.result.observations >= 20,
            timeout_s=120,
            what="agents and writers under way",
        )
        sqlite_server.kill()
        killed_at_acknowledged = sim.result.observations
        sqlite_server.restart()
        # Both kinds of client got through after the restart.
        wait_until(
            lambda: sim.result.observations > killed_at_acknowledged + 20,
            timeout_s=120,
            what="writers making progress after the restart",
        )
        sim.stop_requested.set()
        load.join(timeout=120)
        assert not load.is_alive()
        for agent in agents:
            assert agent.wait(240) == 0, agent.output()
    finally:
        sim.stop_requested.set()
        for agent in agents:
            agent.kill()
        for imds in imdses:
            imds.stop()
    assert_exactly_once(api, eid, agents)
    retried = sum(
        len(a.events("observation_ambiguous")) + len(a.events("suggestion_create_ambiguous"))
        for a in agents
    )
    print(f"\nagent ambiguous writes: {retried}; writer errors {dict(sim.result.errors)}")
    check = reconcile(sqlite_server.url, TOKEN, load_eid, sim.result)
    assert check.missing == [] and check.changed == [] and check.duplicated == [], check
    assert check.open_duplicates == [], check
    # The kill really interrupted the writers (otherwise this test proved nothing).
    assert sum(sim.result.errors.values()) > 0
