"""A demo-sized fleet behind a fault-injecting proxy: every suggestion ends with one observation.

tests/agent/test_faults.py fires each fault kind a few times at two agents; here four agents run
a 40-observation experiment while every kind fires at random (seeded) on every call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.agent.helpers import Api
from tests.reliability.agents import assert_exactly_once, start_agents
from tests.reliability.conftest import TOKEN
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer

BUDGET = 40
AGENTS = 4


def test_demo_sized_run_through_random_faults(sqlite_server: RunningServer, tmp_path: Path) -> None:
    api = Api(sqlite_server.url, TOKEN)
    eid = api.create_experiment(budget=BUDGET, name="proxy-faults")
    with FaultProxy(sqlite_server.url, seed=11) as proxy:
        faults: list[tuple[str, dict[str, Any]]] = [
            ("drop", {}),
            ("reset", {}),
            ("reset_after_forward", {}),
            ("status_after_forward", {"status": 502}),
            ("status", {"status": 500}),
            ("status", {"status": 503}),
            ("status", {"status": 429}),
            ("delay", {"delay_s": 0.5}),
        ]
        for kind, options in faults:
            proxy.add(kind, times=None, probability=0.03, **options)
        agents, imdses = start_agents(
            proxy.url, TOKEN, eid, tmp_path, AGENTS, "proxy", {"OPTFLEET_HTTP_ATTEMPTS": "12"}
        )
        try:
            for agent in agents:
                assert agent.wait(240) == 0, agent.output()
        finally:
            for agent in agents:
                agent.kill()
            for imds in imdses:
                imds.stop()
        fired = {f"{r.kind}:{r.status}": r.fired for r in proxy.rules}
        requests = len(proxy.log)
    per_suggestion = assert_exactly_once(api, eid, agents)
    print(f"\n{requests} requests, faults fired: {fired}, suggestions {len(per_suggestion)}")
    assert len(per_suggestion) >= BUDGET
    # Every fault kind actually fired (otherwise the seed proves less than it claims).
    assert all(count > 0 for count in fired.values()), fired
