"""A dollar cap drains a simulated fleet: EC2 instances in moto, prices from the emulator."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.imds import ImdsEmulator, InstanceIdentity
from emulators.pricing import PricingEmulator, SimulatedPrice
from tests.agent.helpers import AgentProcess, Api
from tests.cli.conftest import MotoServer
from tests.cost.conftest import TOKEN, create_experiment
from tests.support.ports import wait_until
from tests.support.server import RunningServer
from worker_bootstrap.cost.cap import CostCap, CostUnknown, effective_cap
from worker_bootstrap.cost.fleet_spend import ended_at, fleet_spend, instance_spend
from worker_bootstrap.cost.pricing import PriceBook

COSTLY = "x9.costly"  # 3600 USD/h on demand in tests/cost/conftest.py: one dollar a second
# Half a second of work per evaluation, then a result (the agent's evaluation contract).
EVALUATION = [
    sys.executable,
    "-c",
    "import os, time; time.sleep(0.5); "
    "open(os.environ['OPTFLEET_RESULT_FILE'], 'w').write('{\"value\": 1.0}')",
]


def launch(moto: MotoServer, experiment_id: str, count: int, key: str = "Experiment") -> list[str]:
    reservation = moto.client("ec2").run_instances(
        ImageId="ami-0123456789abcdef0",  # moto launches any id; listing its images is slow
        InstanceType=COSTLY,
        MinCount=count,
        MaxCount=count,
        Placement={"AvailabilityZone": "us-east-1a"},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": key, "Value": experiment_id}]}
        ],
    )
    return [i["InstanceId"] for i in reservation["Instances"]]


def test_cap_drains_the_fleet_with_nothing_lost_or_left_open(
    server: RunningServer, moto: MotoServer, pricing: PricingEmulator, tmp_path: Path
) -> None:
    api = Api(server.url, TOKEN)
    eid = create_experiment(api, "cost-cap", observation_budget=500)
    ids = launch(moto, eid, 3)
    env = {
        **moto.env,
        "AWS_ENDPOINT_URL_PRICING": pricing.url,
        "OPTFLEET_WHEN_DONE": "terminate",
    }
    imdses = [
        ImdsEmulator(InstanceIdentity(instance_id=i, instance_type=COSTLY), {"Experiment": eid})
        for i in ids
    ]
    agents = []
    try:
        for instance_id, imds in zip(ids, imdses):
            imds.start()
            agents.append(
                AgentProcess(
                    server.url,
                    TOKEN,
                    eid,
                    imds.url,
                    tmp_path / instance_id,
                    command=EVALUATION,
                    env=env,
                ).start()
            )
        # Once the fleet works, cap it a few fleet-seconds above what it has spent so far, so
        # the test does not depend on how long the agents took to start.
        wait_until(lambda: len(api.observations(eid)) >= 3, 60, "three observations")
        book = PriceBook(None, clients=clients(moto, pricing))
        spent = fleet_spend(moto.client("ec2"), eid, book, time.time(), "us-east-1").usd
        assert spent is not None
        cap = round(spent + 6.0, 2)
        api.call("PUT", f"/experiments/{eid}", json={"metadata": {"max_cost_usd": cap}})
        for agent in agents:
            assert agent.wait(120) == 0, agent.output()
    finally:
        for imds in imdses:
            imds.stop()

    for agent in agents:
        [finished] = agent.events("agent_finished")
        assert finished["reason"] == "cost_cap_reached", agent.output()
        assert agent.events("drained")[0]["result"] == "terminated"
        # Once capped, each new suggestion came right after a check below the cap, and the
        # first check at the cap was the last: at most the evaluation in flight ran past it.
        last_check: dict[str, Any] | None = None
        capped = False
        for event in agent.events():
            if event["event"] == "cost_checked":
                last_check, capped = event, True
            elif event["event"] == "suggestion_created" and capped:
                assert last_check is not None and last_check["reached"] == 0
                assert last_check["spend_usd"] < cap
                last_check = None
        assert last_check is not None and last_check["reached"] == 1
        assert last_check["spend_usd"] >= cap

    per_suggestion = api.observations_per_suggestion(eid)
    assert set(per_suggestion.values()) == {1}  # nothing evaluated twice, nothing lost
    assert len(per_suggestion) == sum(len(a.events("suggestion_created")) for a in agents)
    assert api.open_suggestions(eid) == []  # nothing left open
    states = moto.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} == {"terminated"}
    assert all(o["metadata"]["cost_usd"] > 0 for o in api.observations(eid))
    final = fleet_spend(moto.client("ec2"), eid, book, time.time(), "us-east-1")
    assert final.usd is not None and final.usd >= cap
    # How far past the cap the drain went before EC2's one-minute billing minimum.
    ran = sum((i.ended_at or time.time()) - i.launched_at for i in final.instances)
    print(f"cap {cap:.2f} USD; fleet ran {ran:.1f} instance-s = {ran:.2f} USD before minimums")


def test_cap_estimate_from_moto_instances(moto: MotoServer, pricing: PricingEmulator) -> None:
    ids = launch(moto, "cap-estimate", 2)
    moto.client("ec2").terminate_instances(InstanceIds=ids[:1])
    book = PriceBook(None, clients=clients(moto, pricing))
    now = time.time()
    spend = fleet_spend(moto.client("ec2"), "cap-estimate", book, now, "us-east-1")
    by_id = {i.instance_id: i for i in spend.instances}
    assert by_id[ids[0]].state == "terminated" and by_id[ids[0]].ended_at is not None
    assert by_id[ids[0]].seconds >= 60  # the billing minimum of an instance that ended
    assert by_id[ids[1]].ended_at is None
    assert spend.usd == pytest.approx(spend.seconds * 1.0, rel=1e-6)
    cap = CostCap("cap-estimate", "us-east-1", book, setting=None, ec2=lambda: moto.client("ec2"))
    assert cap.check({"metadata": {}}) is None
    check = cap.check({"metadata": {"max_cost_usd": "1000000"}})
    assert check is not None and not check.reached and check.instances == 2
    assert effective_cap({"metadata": {"max_cost_usd": 50}}, setting=20.0) == 20.0


def test_cap_with_unknown_spend_refuses_to_continue(moto: MotoServer) -> None:
    launch(moto, "cap-unknown", 1)
    book = PriceBook(None, clients=lambda service, region: moto.client(service))
    cap = CostCap("cap-unknown", "us-east-1", book, setting=5.0, ec2=lambda: moto.client("ec2"))
    # moto has no Price List API: the on-demand price is unknown, so the spend is too.
    with pytest.raises(CostUnknown, match="cannot be estimated"):
        cap.check({"metadata": {}})
    with pytest.raises(CostUnknown, match="expected a positive number"):
        cap.check({"metadata": {"max_cost_usd": "-3"}})


def test_termination_time_from_the_state_transition_reason() -> None:
    noon = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc).timestamp()
    assert ended_at("terminated", "User initiated (2026-11-30 12:00:00 GMT)") == noon
    assert ended_at("stopped", "User initiated (2026-11-30 12:00:00 UTC)") == noon
    assert ended_at("running", "") is None
    assert ended_at("terminated", "Server.SpotInstanceTermination") is None


def test_spend_never_drops_when_the_instance_ends() -> None:
    """EC2's termination time is truncated to the second; the spend must not shrink with it."""
    noon = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc).timestamp()
    book = PriceBook(None, clients=lambda service, region: None, enabled=False)
    record: dict[str, Any] = {
        "InstanceId": "i-0ended",
        "InstanceType": "c5.large",
        "LaunchTime": dt.datetime(2026, 11, 30, 11, 59, 40, tzinfo=dt.timezone.utc),
        "State": {"Name": "running"},
    }
    # A cap check 0.7 s into noon's second, then the instance ends within that second.
    running = instance_spend(record, book, noon + 0.7, "us-east-1", minimum_billed_s=0)
    record["State"] = {"Name": "terminated"}
    record["StateTransitionReason"] = "User initiated (2026-11-30 12:00:00 GMT)"
    ended = instance_spend(record, book, noon + 30, "us-east-1", minimum_billed_s=0)
    assert running.seconds == pytest.approx(20.7)
    assert ended.seconds >= running.seconds and ended.seconds == pytest.approx(21.0)


def clients(moto: MotoServer, pricing: PricingEmulator) -> Any:
    """Prices from the emulator's Price List, everything else (EC2) from moto."""

    def make(service: str, region: str | None) -> Any:
        if service != "pricing":
            return moto.client(service)
        import boto3

        return boto3.client(
            "pricing",
            region_name="us-east-1",
            endpoint_url=pricing.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


def test_pricing_emulator_refuses_other_actions(pricing: PricingEmulator) -> None:
    response = requests.post(pricing.url, data={"Action": "RunInstances"}, timeout=10)
    assert response.status_code == 400
    assert "not emulated" in response.text
    pricing.prices.append(SimulatedPrice("t9.tiny", 0.001, 0.0005))
    assert any(
        "t9.tiny" in d for d in pricing.get_products({"ServiceCode": "AmazonEC2"})["PriceList"]
    )
