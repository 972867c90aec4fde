"""The rotation function of a fleet's token secret (Secrets Manager rotation, docs/infra.md
"Scheduled rotation of a fleet's token").

The fleet's secret holds ``{"token": "<value>", "token_id": "<id>"}``. Secrets Manager calls
:func:`handler` four times per rotation, each with the new version's id:

- ``createSecret``: unless that version exists already (a retried step), rotate the token on the
  server (``POST /v1/tokens/{id}/rotate`` with the operator token, the previous value accepted for
  the grace) and store the new value as ``AWSPENDING``;
- ``setSecret``: nothing (the server accepts the new value already);
- ``testSecret``: ``GET /v1/tokens/self`` with the new value must answer 200;
- ``finishSecret``: make the new version ``AWSCURRENT``.

Settings come from the function's environment: ``OPTFLEET_API_URL``, ``OPTFLEET_OPERATOR_SECRET``
(the secret holding an operator token of the same client), ``OPTFLEET_CA_BUNDLE`` (a file of the
CA that signed the server's certificate, optional) and ``OPTFLEET_ROTATION_GRACE`` (seconds,
default 3600). Standard library and the runtime's boto3 only; every request has a timeout and at
most three attempts.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

PENDING = "AWSPENDING"
CURRENT = "AWSCURRENT"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
ATTEMPTS = 3
TIMEOUT_S = 10.0


class RotationError(Exception):
    """A step cannot be carried out; the message names the secret and why."""


def secret_value(text: str, secret_id: str) -> Dict[str, str]:
    """``{"token", "token_id"}`` of a fleet secret's JSON text."""
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(key), str) and payload[key] for key in ("token", "token_id")
    ):
        raise RotationError(
            f"secret {secret_id}: expected JSON with string 'token' and 'token_id' "
            "(the token's id from optfleet token list)"
        )
    return {"token": payload["token"], "token_id": payload["token_id"]}


def operator_token(text: str) -> str:
    """The operator token of the control plane's secret: a plain string or JSON with 'token'."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return str(json.loads(stripped)["token"])
    return stripped


@dataclass
class Api:
    """The few calls to the suggestion server, with Basic auth, a timeout and bounded retries."""

    url: str
    ca_bundle: Optional[str] = None

    def call(
        self, method: str, path: str, token: str, body: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        auth = base64.b64encode(f"{token}:".encode()).decode()
        headers = {"Authorization": f"Basic {auth}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.5 * 2**attempt)
            request = urllib.request.Request(  # noqa: S310 (the configured https/http API URL)
                f"{self.url.rstrip('/')}/v1{path}", data=data, method=method, headers=headers
            )
            try:
                with urllib.request.urlopen(  # noqa: S310 (the request built above)
                    request, timeout=TIMEOUT_S, context=context
                ) as response:
                    answer: Dict[str, Any] = json.loads(response.read() or b"{}")
                    return answer
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
                if exc.code < 500 and exc.code != 429:
                    break
            except (urllib.error.URLError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise RotationError(f"{method} {self.url}/v1{path}: {last}")


@dataclass
class Rotation:
    """One fleet secret's rotation steps against Secrets Manager (``secrets``, a boto3 client)."""

    secrets: Any
    api: Api
    operator_secret: str
    grace_s: int = 3600

    def step(self, name: str, secret_id: str, version: str) -> None:
        """Carry out step ``name`` for the new ``version`` of ``secret_id``."""
        if name not in STEPS:
            raise RotationError(f"unknown step {name!r}: expected one of {STEPS}")
        stages = self.secrets.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
        # Secrets Manager stages the new version (without a value) before createSecret; a
        # caller that does not (a test, a manual run) gets it made by createSecret.
        if version not in stages and name != "createSecret":
            raise RotationError(f"secret {secret_id} has no version {version}")
        if CURRENT in stages.get(version, ()):
            return  # finished already
        if version in stages and PENDING not in stages[version]:
            raise RotationError(f"version {version} of {secret_id} is not {PENDING}")
        getattr(self, "_" + name.replace("Secret", ""))(secret_id, version, stages)

    def _current(self, secret_id: str) -> Dict[str, str]:
        text = self.secrets.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)
        return secret_value(text["SecretString"], secret_id)

    def _create(self, secret_id: str, version: str, stages: Mapping[str, Any]) -> None:
        try:
            self.secrets.get_secret_value(
                SecretId=secret_id, VersionId=version, VersionStage=PENDING
            )
            return  # a retried step: the server must not rotate a second time
        except self.secrets.exceptions.ResourceNotFoundException:
            pass
        current = self._current(secret_id)
        operator = self.secrets.get_secret_value(SecretId=self.operator_secret)["SecretString"]
        rotated = self.api.call(
            "POST",
            f"/tokens/{current['token_id']}/rotate",
            operator_token(operator),
            {"grace_seconds": self.grace_s},
        )
        if not isinstance(rotated.get("token"), str):
            raise RotationError(f"the server's rotation answer has no token: {sorted(rotated)}")
        self.secrets.put_secret_value(
            SecretId=secret_id,
            ClientRequestToken=version,
            SecretString=json.dumps({"token": rotated["token"], "token_id": current["token_id"]}),
            VersionStages=[PENDING],
        )

    def _set(self, secret_id: str, version: str, stages: Mapping[str, Any]) -> None:
        del secret_id, version, stages  # the server took the new value in createSecret

    def _test(self, secret_id: str, version: str, stages: Mapping[str, Any]) -> None:
        text = self.secrets.get_secret_value(
            SecretId=secret_id, VersionId=version, VersionStage=PENDING
        )["SecretString"]
        self.api.call("GET", "/tokens/self", secret_value(text, secret_id)["token"])

    def _finish(self, secret_id: str, version: str, stages: Mapping[str, Any]) -> None:
        previous = next((vid for vid, names in stages.items() if CURRENT in names), None)
        self.secrets.update_secret_version_stage(
            SecretId=secret_id,
            VersionStage=CURRENT,
            MoveToVersionId=version,
            **({"RemoveFromVersionId": previous} if previous else {}),
        )


def rotation_from_environ(environ: Mapping[str, str], secrets: Any) -> Rotation:
    """The rotation as the function's environment configures it; errors name the variable."""
    missing = [k for k in ("OPTFLEET_API_URL", "OPTFLEET_OPERATOR_SECRET") if not environ.get(k)]
    if missing:
        raise RotationError(f"{missing[0]} is not set")
    grace = environ.get("OPTFLEET_ROTATION_GRACE", "3600")
    if not grace.isdigit():
        raise RotationError(f"OPTFLEET_ROTATION_GRACE={grace!r}: expected whole seconds")
    return Rotation(
        secrets,
        Api(environ["OPTFLEET_API_URL"], environ.get("OPTFLEET_CA_BUNDLE") or None),
        environ["OPTFLEET_OPERATOR_SECRET"],
        int(grace),
    )


def handler(event: Mapping[str, Any], context: Any = None) -> None:
    """Secrets Manager's entry point: ``{"SecretId", "ClientRequestToken", "Step"}``."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    secrets = boto3.client(
        "secretsmanager", region_name=os.environ.get("AWS_REGION"), config=config
    )
    rotation = rotation_from_environ(os.environ, secrets)
    rotation.step(str(event["Step"]), str(event["SecretId"]), str(event["ClientRequestToken"]))
