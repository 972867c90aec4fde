"""The agent honours SigOpt's stopping criteria when the experiment asks for it (metadata
``optfleet_stop_on_criteria``), asks once per observation, and ignores servers without them."""

from __future__ import annotations

from pathlib import Path

from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer
from worker_bootstrap.stopping_criteria import asks_to_stop_on_criteria

# Two parameters: stagnation looks back D = 10 observations and needs D + 5 = 15.
SEEDED = [1.0, 2.0, 3.0, 4.0, 5.0] + [-1.0] * 9  # 14: the 15th (any value <= 0) stagnates


def _stagnating_experiment(api: Api, budget: int, stop_on_criteria: bool) -> str:
    eid = api.create_experiment(budget=budget)
    if stop_on_criteria:
        api.call(
            "PUT", f"/experiments/{eid}", json={"metadata": {"optfleet_stop_on_criteria": "true"}}
        )
    for n, value in enumerate(SEEDED):
        body = {"assignments": {"x": n / 20, "y": 0.5}, "values": [{"value": value}]}
        api.call("POST", f"/experiments/{eid}/observations", json=body)
    return eid


def test_the_setting_is_read_from_metadata() -> None:
    for value, expected in (("true", True), ("TRUE", True), (1, True), ("1", True), ("no", False)):
        assert asks_to_stop_on_criteria({"metadata": {"optfleet_stop_on_criteria": value}}) is (
            expected
        ), value
    assert not asks_to_stop_on_criteria({"metadata": None})
    assert not asks_to_stop_on_criteria({"metadata": {"optfleet_stop_on_criteria": 0}})


def test_the_fleet_stops_when_the_criteria_say_so(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = _stagnating_experiment(api, budget=40, stop_on_criteria=True)
    with emulator("i-0criteria0000001") as imds, FaultProxy(server.url) as proxy:
        agent = AgentProcess(proxy.url, server.token, eid, imds.url, workdir / "a")
        assert agent.run() == 0, agent.output()
    finished = agent.events("agent_finished")
    assert finished and finished[0]["reason"] == "stopping_criteria", agent.output()
    met = agent.events("stopping_criteria_met")
    assert met and met[0]["reasons"] == ["possible_stagnation"]
    assert len(api.observations(eid)) == len(SEEDED) + 1  # one evaluation, then the stop
    asked = [p for m, p, _, _ in proxy.log if p.endswith("/stopping_criteria")]
    assert len(asked) == 2  # at 14 observations, and at 15


def test_without_the_setting_the_criteria_are_not_asked(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = _stagnating_experiment(api, budget=len(SEEDED) + 2, stop_on_criteria=False)
    with emulator("i-0criteria0000002") as imds, FaultProxy(server.url) as proxy:
        agent = AgentProcess(proxy.url, server.token, eid, imds.url, workdir / "a")
        assert agent.run() == 0, agent.output()
    assert agent.events("agent_finished")[0]["reason"] == "budget_reached"
    assert not [p for m, p, _, _ in proxy.log if p.endswith("/stopping_criteria")]


def test_a_server_without_the_route_is_worked_on_as_usual(
    server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = _stagnating_experiment(api, budget=len(SEEDED) + 3, stop_on_criteria=True)
    with emulator("i-0criteria0000003") as imds, FaultProxy(server.url) as proxy:
        proxy.add("status", method="GET", path=r"/stopping_criteria$", status=404, times=None)
        agent = AgentProcess(proxy.url, server.token, eid, imds.url, workdir / "a")
        assert agent.run() == 0, agent.output()
    assert agent.events("agent_finished")[0]["reason"] == "budget_reached", agent.output()
    assert len(agent.events("stopping_criteria_unavailable")) == 1
    asked = [p for m, p, _, _ in proxy.log if p.endswith("/stopping_criteria")]
    assert len(asked) == 1  # a 404 turns the check off for the run
