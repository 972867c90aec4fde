"""The fleet secret's rotation function (infra/runtime/token_rotation.py) run step by step as
Secrets Manager would, against moto's Secrets Manager in server mode and a suggestion server on
loopback whose clock the test moves; then an agent's client holding the old value goes on after
the grace by re-reading the secret."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from infra.runtime.token_rotation import (
    CURRENT,
    STEPS,
    RotationError,
    handler,
    rotation_from_environ,
)
from tests.agent import test_aws
from tests.agent.test_token_rotation import OPERATOR, Served, client_for, served

moto = test_aws.moto  # the module's moto server (fixture)
__all__ = ["served"]  # the fixture, imported for this module's tests


class FleetSecret:
    """The fleet's secret in its rotation form (JSON with token and token_id)."""

    def __init__(self, moto: str, token: str, token_id: int) -> None:
        self.client = test_aws.client(moto, "secretsmanager")
        self.name = f"optfleet/fleet-{uuid.uuid4().hex[:8]}"
        body = json.dumps({"token": token, "token_id": str(token_id)})
        self.client.create_secret(Name=self.name, SecretString=body)

    def current(self) -> dict[str, str]:
        text = self.client.get_secret_value(SecretId=self.name, VersionStage=CURRENT)
        return dict(json.loads(text["SecretString"]))


@pytest.fixture
def environ(moto: str, served: Served, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in test_aws.aws_env(moto).items():
        monkeypatch.setenv(key, value)
    operator = test_aws.client(moto, "secretsmanager").create_secret(
        Name=f"optfleet/operator-{uuid.uuid4().hex[:8]}", SecretString=OPERATOR
    )["ARN"]
    settings = {
        "OPTFLEET_API_URL": served.url,
        "OPTFLEET_OPERATOR_SECRET": operator,
        "OPTFLEET_ROTATION_GRACE": "600",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return settings


def status(served: Served, token: str) -> int:
    return requests.get(f"{served.url}/v1/tokens/self", auth=(token, ""), timeout=30).status_code


def rotate(secret: FleetSecret, version: str) -> None:
    for step in STEPS:
        handler({"SecretId": secret.name, "ClientRequestToken": version, "Step": step})


def test_a_scheduled_rotation_keeps_the_fleet_working(
    served: Served, environ: dict[str, str], moto: str
) -> None:
    eid = served.api.create_experiment(budget=10)
    old, token_id = served.scoped_token(eid)
    secret = FleetSecret(moto, old, token_id)
    client, events = client_for(served, secret.name, old)
    version = str(uuid.uuid4())
    handler({"SecretId": secret.name, "ClientRequestToken": version, "Step": "createSecret"})
    pending = json.loads(
        secret.client.get_secret_value(SecretId=secret.name, VersionId=version)["SecretString"]
    )
    # A retried createSecret does not rotate the token a second time.
    rotate(secret, version)
    new = secret.current()
    assert new == pending and new["token_id"] == str(token_id) and new["token"] != old
    assert status(served, new["token"]) == 200 and status(served, old) == 200
    served.clock.now += 661  # past the grace and the server's cache
    assert status(served, old) == 403
    assert client.experiment(eid)["id"] == eid  # refused once, re-read, resent
    assert [name for name, _ in events.seen] == ["token_reread", "token_retry"]
    # A finished version is left alone.
    rotate(secret, version)
    assert secret.current() == new


def test_the_function_refuses_what_it_cannot_rotate(
    served: Served, environ: dict[str, str], moto: str
) -> None:
    plain = test_aws.client(moto, "secretsmanager").create_secret(
        Name=f"optfleet/plain-{uuid.uuid4().hex[:8]}", SecretString="just-a-token"
    )["ARN"]
    event = {"SecretId": plain, "ClientRequestToken": str(uuid.uuid4()), "Step": "createSecret"}
    with pytest.raises(RotationError, match="expected JSON with string 'token' and 'token_id'"):
        handler(event)
    with pytest.raises(RotationError, match="has no version"):
        handler({**event, "Step": "finishSecret"})
    with pytest.raises(RotationError, match="unknown step"):
        handler({**event, "Step": "dropSecret"})
    eid = served.api.create_experiment(budget=10)
    token, _token_id = served.scoped_token(eid)
    wrong = FleetSecret(moto, token, 987654321)
    with pytest.raises(RotationError, match="HTTP 404"):
        handler({**event, "SecretId": wrong.name})
    with pytest.raises(RotationError, match="OPTFLEET_ROTATION_GRACE='1h'"):
        rotation_from_environ({**environ, "OPTFLEET_ROTATION_GRACE": "1h"}, None)
    with pytest.raises(RotationError, match="OPTFLEET_API_URL is not set"):
        rotation_from_environ({}, None)
