"""`optfleet status` and `optfleet sweep` against moto's server mode and a suggestion server.

Real tagged instances, volumes, network interfaces, spot requests and log groups are created with
boto3 in moto; open suggestions and observations on the real server point at those instances
through ``metadata.instance_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sigopt import Connection

from tests.cli.conftest import MotoServer, run_cli
from tests.support.server import RunningServer

EXPERIMENT_SPEC: dict[str, Any] = {
    "name": "status-test",
    "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    "observation_budget": 20,
}


def tag_specs(experiment_id: str, *kinds: str) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": kind,
            "Tags": [
                {"Key": "Experiment", "Value": experiment_id},
                {"Key": "ManagedBy", "Value": "optfleet"},
            ],
        }
        for kind in kinds
    ]


# moto launches from any AMI id; listing its built-in images takes ~10 s on a busy machine.
AMI = "ami-0123456789abcdef0"


def launch(ec2: Any, experiment_id: str, instance_type: str = "c7i.large") -> str:
    image = AMI
    reply = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        TagSpecifications=tag_specs(experiment_id, "instance", "volume"),
    )
    return str(reply["Instances"][0]["InstanceId"])


@pytest.fixture()
def fresh_moto(moto: MotoServer) -> Iterator[MotoServer]:
    moto.reset()
    yield moto


@pytest.fixture()
def fleet(server: RunningServer, fresh_moto: MotoServer) -> dict[str, Any]:
    """Experiment E with: a busy running instance, a terminated one holding an open suggestion,
    an idle running one, and a suggestion whose instance EC2 has never heard of."""
    conn = Connection(client_token=server.token)
    conn.set_api_url(server.url)
    experiment = conn.experiments().create(**EXPERIMENT_SPEC)
    eid = str(experiment.id)
    ec2 = fresh_moto.client("ec2")
    busy, dead, idle = launch(ec2, eid), launch(ec2, eid, "m7i.large"), launch(ec2, eid)
    other = launch(ec2, "other-experiment")
    ec2.terminate_instances(InstanceIds=[dead])

    suggestions = conn.experiments(eid).suggestions()
    observations = conn.experiments(eid).observations()
    for value in (0.1, 0.2):
        s = suggestions.create(metadata={"instance_id": busy})
        observations.create(
            suggestion=s.id, values=[{"value": value}], metadata={"instance_id": busy}
        )
    failed = suggestions.create(metadata={"instance_id": busy})
    observations.create(
        suggestion=failed.id,
        failed=True,
        metadata={"instance_id": busy, "failure_reason": "exit code 3: CUDA out of memory"},
    )
    busy_open = suggestions.create(metadata={"instance_id": busy})
    dead_open = suggestions.create(metadata={"instance_id": dead})
    ghost_open = suggestions.create(metadata={"instance_id": "i-0123456789abcdef0"})
    return {
        "eid": eid,
        "busy": busy,
        "dead": dead,
        "idle": idle,
        "other": other,
        "busy_open": busy_open.id,
        "dead_open": dead_open.id,
        "ghost_open": ghost_open.id,
    }


def env_for(server: RunningServer, moto: MotoServer) -> dict[str, str]:
    return {**moto.env, "SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": server.token}


def test_status_joins_instances_with_suggestions_and_flags_orphans_and_idle(
    server: RunningServer, fresh_moto: MotoServer, fleet: dict[str, Any]
) -> None:
    result = run_cli(
        "status", "--experiment", fleet["eid"], "--json", env=env_for(server, fresh_moto)
    )
    assert result.returncode == 0, result.stderr
    status = result.json()
    rows = {row["instance_id"]: row for row in status["instances"]}
    assert fleet["other"] not in rows

    busy = rows[fleet["busy"]]
    assert busy["state"] == "running"
    assert busy["instance_type"] == "c7i.large"
    assert busy["current_suggestions"] == [fleet["busy_open"]]
    assert isinstance(busy["running_since"], int)
    assert (busy["done"], busy["failed"]) == (2, 1)
    assert busy["last_failure_reason"] == "exit code 3: CUDA out of memory"
    assert busy["flags"] == []

    dead = rows[fleet["dead"]]
    assert dead["state"] == "terminated"
    assert dead["flags"] == ["orphaned-suggestion"]
    ghost = rows["i-0123456789abcdef0"]
    assert ghost["state"] == "gone"
    assert sorted(s["id"] for s in status["orphaned_suggestions"]) == sorted(
        [fleet["dead_open"], fleet["ghost_open"]]
    )
    assert status["idle_instances"] == [fleet["idle"]]
    assert rows[fleet["idle"]]["flags"] == ["idle"]

    table = run_cli(
        "status", "--experiment", fleet["eid"], env=env_for(server, fresh_moto), process=True
    )
    assert table.returncode == 0, table.stderr
    assert f"orphaned suggestion {fleet['dead_open']}" in " ".join(table.stdout.split())
    assert fleet["idle"] in table.stdout


def test_status_reports_an_unreachable_aws_endpoint_in_one_line(
    server: RunningServer, moto: MotoServer
) -> None:
    env = {
        **env_for(server, moto),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }
    experiment = Connection(client_token=server.token)
    experiment.set_api_url(server.url)
    eid = str(experiment.experiments().create(**EXPERIMENT_SPEC).id)
    result = run_cli("status", "--experiment", eid, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("optfleet status: AWS:")
    assert "Traceback" not in result.stderr


def test_sweep_lists_then_deletes_everything_tagged_and_nothing_else(
    server: RunningServer, fresh_moto: MotoServer, fleet: dict[str, Any]
) -> None:
    eid = fleet["eid"]
    ec2, logs = fresh_moto.client("ec2"), fresh_moto.client("logs")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    loose_volume = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=8, TagSpecifications=tag_specs(eid, "volume")
    )["VolumeId"]
    eni = ec2.create_network_interface(
        SubnetId=subnet, TagSpecifications=tag_specs(eid, "network-interface")
    )
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    image = AMI
    spot = ec2.request_spot_instances(
        InstanceCount=1,
        LaunchSpecification={"ImageId": image, "InstanceType": "c7i.large"},
        TagSpecifications=tag_specs(eid, "spot-instances-request"),
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    logs.create_log_group(logGroupName=f"/optfleet/{eid}", tags={"Experiment": eid})
    logs.create_log_group(
        logGroupName="/optfleet/other-experiment", tags={"Experiment": "other-experiment"}
    )
    other_volume = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=tag_specs("other-experiment", "volume"),
    )["VolumeId"]
    env = fresh_moto.env

    listed = run_cli("sweep", "--experiment", eid, "--json", env=env)
    assert listed.returncode == 1, listed.stderr
    found = {(r["kind"], r["resource_id"]) for r in listed.json()["found"]}
    assert {
        ("instance", fleet["busy"]),
        ("instance", fleet["idle"]),
        ("volume", loose_volume),
        ("network-interface", eni_id),
        ("spot-request", spot),
        ("log-group", f"/optfleet/{eid}"),
    } <= found
    assert ("instance", fleet["dead"]) not in found  # already terminated: not a leftover
    assert ("instance", fleet["other"]) not in found
    assert ("volume", other_volume) not in found
    assert ("log-group", "/optfleet/other-experiment") not in found
    # Listing changes nothing.
    assert (
        run_cli("sweep", "--experiment", eid, "--json", env=env).json()["found"]
        == listed.json()["found"]
    )

    deleted = run_cli("sweep", "--experiment", eid, "--delete", "--json", env=env)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert deleted.json()["remaining"] == []
    again = run_cli("sweep", "--experiment", eid, env=env)
    assert again.returncode == 0
    assert "nothing tagged" in again.stdout

    states = {
        i["InstanceId"]: i["State"]["Name"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    assert states[fleet["busy"]] == "terminated" and states[fleet["idle"]] == "terminated"
    assert states[fleet["other"]] == "running"
    assert [v["VolumeId"] for v in ec2.describe_volumes(VolumeIds=[other_volume])["Volumes"]] == [
        other_volume
    ]
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == [
        "/optfleet/other-experiment"
    ]
