"""The agent stamps instance-seconds and cost into every observation, over every attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulators.pricing import PricingEmulator
from tests.agent.helpers import AgentProcess, Api, emulator
from tests.cost.conftest import TOKEN
from tests.support.ports import wait_until
from tests.support.server import RunningServer

ON_DEMAND_USD = 0.085  # c6i.large in tests/cost/conftest.py, the IMDS emulator's default type
SPOT_USD = 0.0312
FAST = {
    "OPTFLEET_CLAIM_SETTLE": "0.3",
    "OPTFLEET_ADOPT_INTERVAL": "0.5",
}


def aws_env(pricing: PricingEmulator) -> dict[str, str]:
    return {**pricing.env(), "AWS_REGION": "us-east-1"}


def close(value: Any, expected: float) -> bool:
    return value == pytest.approx(expected, rel=1e-3, abs=2e-8)


def test_every_observation_carries_seconds_and_cost(
    server: RunningServer, pricing: PricingEmulator, tmp_path: Path
) -> None:
    api = Api(server.url, TOKEN)
    eid = api.create_experiment(budget=3)
    with emulator("i-0costod00000001") as imds:
        agent = AgentProcess(
            server.url, TOKEN, eid, imds.url, tmp_path / "a", mode="fail", env=aws_env(pricing)
        )
        assert agent.run() == 0, agent.output()
    observations = api.observations(eid)
    assert len(observations) == 3
    for observation in observations:
        meta = observation["metadata"]
        assert observation["failed"] is True  # a failed evaluation carries its cost too
        assert meta["instance_seconds"] > 0
        assert meta["earlier_attempts_seconds"] == 0
        assert meta["price_source"] == "on-demand"
        assert meta["price_usd_per_hour"] == ON_DEMAND_USD
        assert meta["price_time"] == "2026-11-01T00:00:00Z"
        assert close(meta["cost_usd"], meta["instance_seconds"] * ON_DEMAND_USD / 3600)
        assert "cost_unknown_reason" not in meta
    assert pricing.calls == {"GetProducts": 1}  # once per type and hour, not per evaluation


def test_unknown_price_leaves_cost_out_never_zero(server: RunningServer, tmp_path: Path) -> None:
    api = Api(server.url, TOKEN)
    eid = api.create_experiment(budget=1)
    with emulator("i-0costnone000001") as imds:
        # No AWS credentials at all: the IMDS emulator has no instance role to offer.
        agent = AgentProcess(server.url, TOKEN, eid, imds.url, tmp_path / "a")
        assert agent.run() == 0, agent.output()
    [observation] = api.observations(eid)
    meta = observation["metadata"]
    assert meta["instance_seconds"] > 0
    assert "cost_usd" not in meta
    assert "price_usd_per_hour" not in meta
    assert meta["cost_unknown_reason"]


def test_reboot_resumed_suggestion_counts_both_attempts(
    server: RunningServer, pricing: PricingEmulator, tmp_path: Path
) -> None:
    api = Api(server.url, TOKEN)
    eid = api.create_experiment(budget=1)
    release = tmp_path / "release"
    env = {**aws_env(pricing), **FAST, "OPTFLEET_LEASE_TTL": "1.5", "EVAL_RELEASE": str(release)}
    with emulator("i-0costreboot0001") as imds:
        agent = AgentProcess(server.url, TOKEN, eid, imds.url, tmp_path / "a", mode="wait", env=env)
        agent.start()

        def first_attempt_recorded() -> bool:
            suggestions = api.open_suggestions(eid)
            meta = (suggestions[0].get("metadata") or {}) if suggestions else {}
            return float(meta.get("spent_attempt_s") or 0) >= 1.0

        wait_until(first_attempt_recorded, 60, "a lease renewal recording the first attempt")
        [suggestion] = api.open_suggestions(eid)
        recorded = float(suggestion["metadata"]["spent_attempt_s"])
        assert close(suggestion["metadata"]["spent_attempt_usd"], recorded * ON_DEMAND_USD / 3600)
        agent.kill()  # power loss: no final write, the last renewal is what counts
        release.write_text("go")
        assert agent.run() == 0, agent.output()
    [observation] = api.observations(eid)
    meta = observation["metadata"]
    assert meta["resumed"] == 1
    assert meta["earlier_attempts_seconds"] >= recorded
    assert meta["instance_seconds"] > meta["earlier_attempts_seconds"]
    assert close(meta["cost_usd"], meta["instance_seconds"] * ON_DEMAND_USD / 3600)


def test_adopted_suggestion_counts_the_spot_attempt_at_its_own_price(
    server: RunningServer, pricing: PricingEmulator, tmp_path: Path
) -> None:
    api = Api(server.url, TOKEN)
    eid = api.create_experiment(budget=1)
    env = {**aws_env(pricing), **FAST, "EVAL_RELEASE": str(tmp_path / "never")}
    with emulator("i-0costspot000001", lifecycle="spot") as imds:
        victim = AgentProcess(
            server.url, TOKEN, eid, imds.url, tmp_path / "v", mode="wait", env=env
        )
        victim.start()
        wait_until(lambda: len(victim.evaluations()) == 1, 30, "victim evaluation")
        imds.schedule_spot_action(in_s=120)
        assert victim.wait(30) == 0, victim.output()
    [interrupted] = api.open_suggestions(eid)
    spent_s = float(interrupted["metadata"]["spent_attempt_s"])
    assert spent_s > 0
    assert close(interrupted["metadata"]["spent_attempt_usd"], spent_s * SPOT_USD / 3600)
    with emulator("i-0costheir000001") as imds:
        heir = AgentProcess(server.url, TOKEN, eid, imds.url, tmp_path / "h", env=aws_env(pricing))
        assert heir.run(**FAST) == 0, heir.output()
    [observation] = api.observations(eid)
    meta = observation["metadata"]
    assert meta["adopted_by"] == "i-0costheir000001"
    assert meta["earlier_attempts_seconds"] == pytest.approx(spent_s, abs=1e-3)
    assert close(meta["earlier_attempts_cost_usd"], spent_s * SPOT_USD / 3600)
    own_s = meta["instance_seconds"] - meta["earlier_attempts_seconds"]
    assert own_s > 0
    expected = spent_s * SPOT_USD / 3600 + own_s * ON_DEMAND_USD / 3600
    assert close(meta["cost_usd"], expected)
    assert meta["price_source"] == "on-demand"  # the reporting instance's price
