"""The IMDSv2 emulator's contract, and the agent's IMDS client against it."""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest
import requests

from emulators.imds import ImdsEmulator, InstanceIdentity, RoleCredentials
from tests.support.ports import free_port, wait_until
from worker_bootstrap.imds import ImdsClient, ImdsUnavailable
from worker_bootstrap.retry import Backoff

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def imds(clock: FakeClock):  # type: ignore[no-untyped-def]
    identity = InstanceIdentity(
        instance_id="i-0emu",
        instance_type="g5.xlarge",
        availability_zone="eu-west-1b",
        region="eu-west-1",
        lifecycle="spot",
        ami_id="ami-0123",
    )
    with ImdsEmulator(
        identity=identity, tags={"Experiment": "42", "Team": "ml"}, clock=clock
    ) as emulator:
        yield emulator


def token(imds: ImdsEmulator, ttl: str = "60") -> str:
    response = requests.put(f"{imds.url}/latest/api/token", headers={TTL: ttl}, timeout=5)
    assert response.status_code == 200
    assert response.headers[TTL] == ttl
    return response.text


def get(imds: ImdsEmulator, path: str, tok: str | None) -> requests.Response:
    headers = {TOKEN: tok} if tok else {}
    return requests.get(f"{imds.url}/latest/{path}", headers=headers, timeout=5)


def test_token_and_identity_paths(imds: ImdsEmulator) -> None:
    tok = token(imds)
    assert get(imds, "meta-data/instance-id", tok).text == "i-0emu"
    assert get(imds, "meta-data/instance-type", tok).text == "g5.xlarge"
    assert get(imds, "meta-data/placement/availability-zone", tok).text == "eu-west-1b"
    assert get(imds, "meta-data/placement/region", tok).text == "eu-west-1"
    assert get(imds, "meta-data/instance-life-cycle", tok).text == "spot"
    assert get(imds, "meta-data/ami-id", tok).text == "ami-0123"
    doc = get(imds, "dynamic/instance-identity/document", tok).json()
    assert doc["instanceId"] == "i-0emu" and doc["region"] == "eu-west-1"
    assert get(imds, "meta-data/no-such-thing", tok).status_code == 404


def test_401_without_or_with_invalid_or_expired_token(imds: ImdsEmulator, clock: FakeClock) -> None:
    assert get(imds, "meta-data/instance-id", None).status_code == 401
    assert get(imds, "meta-data/instance-id", "made-up").status_code == 401
    tok = token(imds, "60")
    clock.now += 59
    assert get(imds, "meta-data/instance-id", tok).status_code == 200
    clock.now += 2
    assert get(imds, "meta-data/instance-id", tok).status_code == 401


@pytest.mark.parametrize("ttl", [None, "0", "21601", "-5", "abc"])
def test_400_for_missing_or_out_of_range_ttl(imds: ImdsEmulator, ttl: str | None) -> None:
    headers = {TTL: ttl} if ttl is not None else {}
    response = requests.put(f"{imds.url}/latest/api/token", headers=headers, timeout=5)
    assert response.status_code == 400


def test_403_for_token_put_through_a_proxy(imds: ImdsEmulator) -> None:
    response = requests.put(
        f"{imds.url}/latest/api/token",
        headers={TTL: "60", "X-Forwarded-For": "10.0.0.9"},
        timeout=5,
    )
    assert response.status_code == 403


def test_tags(imds: ImdsEmulator) -> None:
    tok = token(imds)
    assert get(imds, "meta-data/tags/instance", tok).text.splitlines() == ["Experiment", "Team"]
    assert get(imds, "meta-data/tags/instance/Experiment", tok).text == "42"
    assert get(imds, "meta-data/tags/instance/Nope", tok).status_code == 404
    imds.tags_enabled = False
    assert get(imds, "meta-data/tags/instance", tok).status_code == 404


def test_spot_action_and_rebalance(imds: ImdsEmulator, clock: FakeClock) -> None:
    tok = token(imds)
    assert get(imds, "meta-data/spot/instance-action", tok).status_code == 404
    assert get(imds, "meta-data/events/recommendations/rebalance", tok).status_code == 404
    imds.set_rebalance_recommendation()
    assert "noticeTime" in get(imds, "meta-data/events/recommendations/rebalance", tok).json()
    imds.schedule_spot_action(action="stop", in_s=120)
    action = get(imds, "meta-data/spot/instance-action", tok).json()
    assert action["action"] == "stop"
    assert action["time"].endswith("Z")
    with pytest.raises(ValueError, match="terminate, stop or hibernate"):
        imds.schedule_spot_action(action="explode")


def test_control_api_for_other_processes(imds: ImdsEmulator) -> None:
    response = requests.post(
        f"{imds.url}/_emulator/spot-action", json={"action": "terminate", "in_s": 30}, timeout=5
    )
    assert response.status_code == 200
    tok = token(imds)
    assert get(imds, "meta-data/spot/instance-action", tok).json()["action"] == "terminate"
    stats = requests.get(f"{imds.url}/_emulator/stats", timeout=5).json()
    assert stats["instance_id"] == "i-0emu" and stats["request_count"] == imds.request_count


def _handler_threads_done() -> bool:
    return not any("process_request_thread" in t.name for t in threading.enumerate())


def test_a_client_hanging_up_mid_request_prints_no_traceback(
    imds: ImdsEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed agent resets its connection: quiet. Any other handler error: still a traceback."""
    host, port = imds.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as hung_up:
        # The body never comes: the handler blocks reading it until the reset arrives.
        hung_up.sendall(
            f"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n{TTL}: 60\r\n"
            "Content-Length: 100000\r\n\r\npartial".encode()
        )
        wait_until(lambda: imds.request_count >= 1, 10, "the emulator read the request")
        # SO_LINGER with a zero timeout: close() sends RST, like a SIGKILLed process mid-request.
        hung_up.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(_handler_threads_done, 10, "the emulator finished the reset request")
    assert capsys.readouterr().err == ""
    with socket.create_connection((host, int(port)), timeout=5) as bad:
        bad.sendall(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        wait_until(lambda: imds.request_count >= 2, 10, "the emulator read the bad request")
        wait_until(_handler_threads_done, 10, "the emulator finished the bad request")
    assert "ValueError" in capsys.readouterr().err  # other errors are not silenced


def test_runs_as_a_module_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators.imds",
            "--instance-id",
            "i-0cli",
            "--port",
            str(port),
            "--tag",
            "Experiment=9",
            "--lifecycle",
            "spot",
            "--host",
            "127.0.0.1",
            "--role-name",
            "optfleet-worker",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["url"] == f"http://127.0.0.1:{port}"
        client = ImdsClient(first["url"])
        assert client.identity().instance_id == "i-0cli"
        assert client.identity().lifecycle == "spot"
        assert client.tags() == {"Experiment": "9"}
        tok = requests.put(f"{first['url']}/latest/api/token", headers={TTL: "60"}, timeout=5).text
        role = requests.get(
            f"{first['url']}/latest/meta-data/iam/security-credentials/optfleet-worker",
            headers={TOKEN: tok},
            timeout=5,
        ).json()
        assert role["Code"] == "Success" and role["AccessKeyId"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_client_reads_identity_once(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.url)
    identity = client.identity()
    assert (identity.instance_id, identity.lifecycle, identity.region) == (
        "i-0emu",
        "spot",
        "eu-west-1",
    )
    count = imds.request_count
    assert client.identity() is identity
    assert imds.request_count == count  # cached: IMDS is rate limited


def test_client_refreshes_an_expired_token_once(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.url)
    assert client.get("meta-data/instance-id") == "i-0emu"
    issued = imds.token_requests
    imds.expire_tokens()
    assert client.get("meta-data/instance-id") == "i-0emu"
    assert imds.token_requests == issued + 1


def test_client_refreshes_before_ttl_runs_out(imds: ImdsEmulator, clock: FakeClock) -> None:
    client = ImdsClient(imds.url, clock=clock, token_ttl_s=120)
    client.get("meta-data/instance-id")
    clock.now += 61  # past TTL minus the refresh margin
    client.get("meta-data/instance-id")
    assert imds.token_requests == 2


def test_client_spot_notice(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.url)
    assert client.spot_action() is None
    assert client.rebalance_recommended() is False
    imds.schedule_spot_action()
    action = client.spot_action()
    assert action is not None and action.action == "terminate"


def test_client_unreachable_is_a_clear_bounded_error() -> None:
    slept: list[float] = []
    client = ImdsClient(
        f"http://127.0.0.1:{free_port()}",
        timeout_s=0.5,
        backoff=Backoff(attempts=3, sleep=slept.append, rng=random.Random(1)),
    )
    with pytest.raises(ImdsUnavailable, match="not running on EC2"):
        client.identity()
    assert len(slept) == 2  # bounded: three attempts, two waits


def test_role_credentials_are_what_botocore_takes_on_ec2() -> None:
    from botocore.utils import InstanceMetadataFetcher

    role = RoleCredentials("optfleet-worker", access_key_id="ASIATWIN")
    with ImdsEmulator(identity=InstanceIdentity(instance_id="i-0role"), role=role) as emulator:
        fetched = InstanceMetadataFetcher(
            timeout=5, num_attempts=1, base_url=emulator.url
        ).retrieve_iam_role_credentials()
        tok = token(emulator)
        assert get(emulator, "meta-data/iam/security-credentials/", tok).text == "optfleet-worker"
        assert get(emulator, "meta-data/iam/info", tok).json()["Code"] == "Success"
    assert fetched["role_name"] == "optfleet-worker"
    assert fetched["access_key"] == "ASIATWIN"
    assert fetched["token"] == role.session_token


def test_no_role_means_no_credentials(imds: ImdsEmulator) -> None:
    tok = token(imds)
    assert get(imds, "meta-data/iam/security-credentials/", tok).status_code == 404


def test_listen_address_is_configurable() -> None:
    port = free_port()
    with ImdsEmulator(host="127.0.0.2", port=port) as emulator:
        assert emulator.url == f"http://127.0.0.2:{port}"
        assert ImdsClient(emulator.url).identity().instance_id == InstanceIdentity().instance_id
