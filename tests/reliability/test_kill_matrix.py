"""The agent's SIGKILL matrix at scale: 50 seeded random kills across 8 agents, exactly once.

tests/agent/test_crash_recovery.py kills one agent at each named step; here kills land wherever
the (seeded) schedule puts them — creating, evaluating, journaling, reporting, resuming — and
each killed agent is started again at once, as systemd would.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.agent.helpers import AgentProcess, Api
from tests.reliability.agents import assert_exactly_once, start_agents
from tests.reliability.conftest import TOKEN
from tests.support.ports import wait_until
from tests.support.server import RunningServer

AGENTS = 8
KILLS = 50
SEED = 50


def ready(agents: list[AgentProcess], starts: list[int]) -> list[int]:
    """Indexes of the agents at work: their latest start has logged ``agent_started`` and then
    started an evaluation (on a loaded machine a kill soon after ``agent_started`` alone would
    land before any work, and the matrix would test nothing)."""
    at_work = []
    for n, agent in enumerate(agents):
        events = [e["event"] for e in agent.events()]
        if events.count("agent_started") < starts[n]:
            continue
        latest_life = events[len(events) - events[::-1].index("agent_started") :]
        if "evaluation_started" in latest_life:
            at_work.append(n)
    return at_work


def test_fifty_random_kills_over_eight_agents(sqlite_server: RunningServer, tmp_path: Path) -> None:
    api = Api(sqlite_server.url, TOKEN)
    eid = api.create_experiment(budget=100_000, name="kill-matrix")
    rng = random.Random(SEED)
    agents, imdses = start_agents(sqlite_server.url, TOKEN, eid, tmp_path, AGENTS, "kill")
    kills = 0
    starts = [1] * AGENTS
    try:
        while kills < KILLS:
            # Kill only agents at work (evaluating, reporting or creating the next one), chosen
            # and timed by the seeded rng.
            wait_until(lambda: bool(ready(agents, starts)), timeout_s=60, what="an agent at work")
            number = rng.choice(ready(agents, starts))
            time.sleep(rng.uniform(0.0, 0.5))  # the injected fault's timing, not synchronisation
            victim = agents[number]
            assert victim.proc is not None and victim.proc.poll() is None, victim.output()
            victim.kill()
            kills += 1
            victim.start()
            starts[number] += 1
        # End the run: a budget a little above what is observed now; every agent drains.
        count = len(api.observations(eid))
        api.call("PUT", f"/experiments/{eid}", json={"observation_budget": count + 2 * AGENTS})
        for agent in agents:
            assert agent.wait(180) == 0, agent.output()
    finally:
        for agent in agents:
            agent.kill()
        for imds in imdses:
            imds.stop()
    per_suggestion = assert_exactly_once(api, eid, agents)
    resumed = sum(len(a.events("suggestion_resumed")) for a in agents)
    from_journal = sum(len(a.events("reporting_from_journal")) for a in agents)
    started = sum(len(a.events("agent_started")) for a in agents)
    print(
        f"\n{kills} kills, {started} agent starts, {len(per_suggestion)} suggestions, "
        f"{resumed} resumed, {from_journal} reported from the journal"
    )
    assert started == AGENTS + KILLS
    # The kills did land mid-work: some suggestions were resumed after a kill.
    assert resumed > 0
