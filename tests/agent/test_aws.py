"""Real boto3 calls against moto's server mode: token from Secrets Manager, EC2 orphan
detection, and drain when done (stop, or terminate with desired-capacity decrement)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.agent.conftest import TOKEN
from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.ports import free_port, wait_until
from tests.support.server import RunningServer
from worker_bootstrap.adoption import rendezvous_winner

MOTO = str(Path(sys.executable).with_name("moto_server"))
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/moto-api/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, 60, "moto server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def aws_env(moto: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
    }


def client(moto: str, service: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def ami(moto: str) -> str:
    images = client(moto, "ec2").describe_images(Owners=["amazon"])["Images"]
    return str(images[0]["ImageId"])


def test_token_from_secrets_manager(
    moto: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    secrets = client(moto, "secretsmanager")
    arn = secrets.create_secret(Name=f"optfleet/token-{time.time_ns()}", SecretString=TOKEN)["ARN"]
    eid = api.create_experiment(budget=1)
    with emulator("i-0secret00000001") as imds:
        agent = AgentProcess(
            server.url,
            None,
            eid,
            imds.url,
            workdir / "a",
            env=aws_env(moto),
            args=["--token-secret", arn],
        )
        assert agent.run() == 0, agent.output()
    assert len(api.observations(eid)) == 1
    assert TOKEN not in agent.output()


def test_token_secret_as_json_and_missing_secret(
    moto: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    name = f"optfleet/json-{time.time_ns()}"
    client(moto, "secretsmanager").create_secret(Name=name, SecretString=f'{{"token": "{TOKEN}"}}')
    eid = api.create_experiment(budget=1)
    with emulator("i-0secretjson0001") as imds:
        good = AgentProcess(
            server.url,
            None,
            eid,
            imds.url,
            workdir / "a",
            env={**aws_env(moto), "OPTFLEET_TOKEN_SECRET": name},
        )
        assert good.run() == 0, good.output()
        bad = AgentProcess(
            server.url,
            None,
            eid,
            imds.url,
            workdir / "b",
            env=aws_env(moto),
            args=["--token-secret", "optfleet/absent"],
        )
        assert bad.run() == 3
    assert "cannot read secret 'optfleet/absent'" in bad.output()


def launch(moto: str, count: int, experiment: str) -> list[str]:
    ec2 = client(moto, "ec2")
    reservation = ec2.run_instances(
        ImageId=ami(moto),
        MinCount=count,
        MaxCount=count,
        InstanceType="t3.micro",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Experiment", "Value": experiment}]}
        ],
    )
    return [i["InstanceId"] for i in reservation["Instances"]]


def test_ec2_says_terminated_so_the_orphan_is_adopted(
    moto: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    eid = api.create_experiment(budget=1)
    dead, first, second = launch(moto, 3, eid)
    client(moto, "ec2").terminate_instances(InstanceIds=[dead])
    far = time.time() + 3600  # the lease is fresh: only EC2 knows the owner is gone
    orphan = api.create_suggestion(eid, {"instance_id": dead, "lease_expires_at": far})
    # Run the agent on the instance the election picks (the other live one has no agent here).
    alive = rendezvous_winner(str(orphan["id"]), {first, second})
    live_foreign = second if alive == first else first
    running = api.create_suggestion(eid, {"instance_id": live_foreign, "lease_expires_at": far})
    with emulator(alive) as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            env={
                **aws_env(moto),
                "OPTFLEET_ORPHAN_DETECTION": "ec2",
                "OPTFLEET_CLAIM_SETTLE": "0.3",
            },
        )
        assert agent.run() == 0, agent.output()
    assert agent.events("orphan_detection")[0]["mode"] == "ec2"
    [obs] = api.observations(eid)
    assert str(obs["suggestion"]) == str(orphan["id"])
    assert obs["metadata"]["previous_instance_ids"] == dead
    assert api.suggestion(eid, str(running["id"]))["state"] == "open"


def group_of_two(moto: str) -> tuple[str, str]:
    """(group name, id of its first instance) of a fresh Auto Scaling group of 2 in moto."""
    ec2 = client(moto, "ec2")
    autoscaling = client(moto, "autoscaling")
    template = f"lt-{time.time_ns()}"
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": ami(moto), "InstanceType": "t3.micro"},
    )
    group = f"asg-{time.time_ns()}"
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        MinSize=0,
        MaxSize=3,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateName": template},
        AvailabilityZones=[f"{REGION}a"],
    )
    return group, described_group(moto, group)["Instances"][0]["InstanceId"]


def described_group(moto: str, group: str) -> dict[str, Any]:
    [described] = client(moto, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[group]
    )["AutoScalingGroups"]
    return dict(described)


def drain(
    moto: str,
    server: RunningServer,
    api: Api,
    workdir: Path,
    me: str,
    when: str,
    env: dict[str, str] | None = None,
) -> Any:
    """Run an agent on instance ``me`` through a one-evaluation experiment with ``when_done``
    (``env`` added to its environment)."""
    eid = api.create_experiment(budget=1)
    with emulator(me) as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            env={
                **aws_env(moto),
                "OPTFLEET_WHEN_DONE": when,
                "OPTFLEET_ADOPT": "false",
                **(env or {}),
            },
        )
        assert agent.run() == 0, agent.output()
    return agent


def test_when_done_terminate_decrements_the_group(
    moto: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    group, me = group_of_two(moto)
    agent = drain(moto, server, api, workdir, me, "terminate")
    assert agent.events("drained")[0]["result"] == f"terminated in auto scaling group {group}"
    after = described_group(moto, group)
    assert after["DesiredCapacity"] == 1
    assert me not in {i["InstanceId"] for i in after["Instances"]}


def test_when_done_stop_in_a_group_enters_standby_first(
    moto: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    """A stopped InService instance would be replaced by the group: Standby prevents that."""
    group, me = group_of_two(moto)
    agent = drain(moto, server, api, workdir, me, "stop")
    assert agent.events("drained")[0]["result"] == (
        f"stopped (standby in auto scaling group {group})"
    )
    after = described_group(moto, group)
    assert after["DesiredCapacity"] == 1
    states = {i["InstanceId"]: i["LifecycleState"] for i in after["Instances"]}
    assert states[me] == "Standby"
    ec2 = client(moto, "ec2").describe_instances(InstanceIds=[me])
    assert ec2["Reservations"][0]["Instances"][0]["State"]["Name"] in ("stopping", "stopped")


def test_when_done_stop(moto: str, server: RunningServer, api: Api, workdir: Path) -> None:
    [me] = launch(moto, 1, "stop-alone")
    agent = drain(moto, server, api, workdir, me, "stop")
    assert agent.events("drained")[0]["result"] == "stopped"
    state = client(moto, "ec2").describe_instances(InstanceIds=[me])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] in ("stopping", "stopped")


def test_when_done_stay_makes_no_aws_call(server: RunningServer, api: Api, workdir: Path) -> None:
    eid = api.create_experiment(budget=1)
    with emulator("i-0stay0000000001") as imds:
        agent = AgentProcess(
            server.url, server.token, eid, imds.url, workdir / "a", env={"OPTFLEET_ADOPT": "false"}
        )
        assert agent.run() == 0, agent.output()
    assert agent.events("drained") == [] and agent.events("drain_failed") == []


def test_ec2_unreachable_falls_back_to_leases(server: RunningServer, api: Api,
                                              workdir: Path) -> None:  # fmt: skip
    eid = api.create_experiment(budget=1)
    orphan = api.create_suggestion(
        eid, {"instance_id": "i-0deadnoec2000001", "lease_expires_at": time.time() - 5000}
    )
    with emulator("i-0noec2access0001") as imds:
        agent = AgentProcess(
            server.url,
            server.token,
            eid,
            imds.url,
            workdir / "a",
            env={
                **aws_env(f"http://127.0.0.1:{free_port()}"),
                "OPTFLEET_ORPHAN_DETECTION": "ec2",
                "OPTFLEET_CLAIM_SETTLE": "0.3",
            },
        )
        assert agent.run(timeout=120) == 0, agent.output()
    assert "ec2:DescribeInstances failed" in agent.events("orphan_scan_fallback")[0]["error"]
    assert api.observations_per_suggestion(eid) == {str(orphan["id"]): 1}


def test_when_done_stop_that_fails_leaves_the_group_as_it_was(
    moto: str, server: RunningServer, api: Api, workdir: Path
) -> None:
    """StopInstances unreachable (EC2's endpoint refuses connections; Auto Scaling's works):
    the agent takes the instance out of Standby again and reports drain_failed, so the group's
    capacity is what it was."""
    group, me = group_of_two(moto)
    unreachable = {"AWS_ENDPOINT_URL_EC2": f"http://127.0.0.1:{free_port()}"}
    agent = drain(moto, server, api, workdir, me, "stop", env=unreachable)
    [failed] = agent.events("drain_failed")
    assert "StopInstances" in failed["error"], failed
    assert f"left standby in {group} again" in failed["error"], failed
    after = described_group(moto, group)
    assert after["DesiredCapacity"] == 2
    states = {i["InstanceId"]: i["LifecycleState"] for i in after["Instances"]}
    assert states[me] == "InService"
