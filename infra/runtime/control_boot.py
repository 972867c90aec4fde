"""Boot steps of the control-plane server that talk to AWS (run by its user data, on the instance).

    python -m infra.runtime.control_boot write-env --out /etc/optfleet/server.env \
        --token-secret ARN [--db-secret ARN | --db-url sqlite:////var/lib/...] [--region R]
    python -m infra.runtime.control_boot attach-volume --volume-id vol-... [--device /dev/sdf]
    python -m infra.runtime.control_boot attach-interface --interface-id eni-...

`write-env` reads the API token (and, for `ha`, the RDS credentials) from Secrets Manager with the
instance role and writes them to a mode-0600 environment file that the systemd unit reads, so no
secret is in user data, the launch template or a command line. The attach commands give the
replacement instance the stack's data volume and its fixed-address network interface; both wait
(bounded) while the previous instance still holds them. boto3 honours AWS_ENDPOINT_URL, which is
how the tests run these steps against moto.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ATTACH_TIMEOUT_S = 600.0
POLL_S = 5.0


def _client(service: str, region: Optional[str]) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 5})
    return boto3.client(service, region_name=region, config=config)


def token_from_secret(value: str) -> str:
    """The API token in a secret string: plain text, or JSON with a ``token`` key."""
    text = value.strip()
    if text.startswith("{"):
        token = json.loads(text).get("token")
        if not isinstance(token, str) or not token:
            raise ValueError("the token secret is JSON without a non-empty 'token' key")
        return token
    if not text:
        raise ValueError("the token secret is empty")
    return text


def db_url_from_rds_secret(value: str) -> str:
    """``postgresql+psycopg://`` URL from an RDS-generated secret (username, password, host...)."""
    secret = json.loads(value)
    missing = [k for k in ("username", "password", "host") if not secret.get(k)]
    if missing:
        raise ValueError(f"the database secret lacks {', '.join(missing)}")
    user = urllib.parse.quote(str(secret["username"]), safe="")
    password = urllib.parse.quote(str(secret["password"]), safe="")
    port = int(secret.get("port") or 5432)
    dbname = urllib.parse.quote(str(secret.get("dbname") or "postgres"), safe="")
    return f"postgresql+psycopg://{user}:{password}@{secret['host']}:{port}/{dbname}"


def _env_line(key: str, value: str) -> str:
    # systemd EnvironmentFile: double quotes keep special characters; escape \ and ".
    if "\n" in value:
        raise ValueError(f"{key} must not contain a newline")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"\n'


def write_env_file(path: Path, pairs: Dict[str, str]) -> None:
    """Write KEY="VALUE" lines to ``path`` with mode 0600 from the start, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# written by optfleet's control-plane user data; read by optfleet-server\n")
        for key, value in pairs.items():
            out.write(_env_line(key, value))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_env(args: argparse.Namespace) -> int:
    """Fetch the secrets and write the server's environment file."""
    secrets = _client("secretsmanager", args.region)
    token = token_from_secret(secrets.get_secret_value(SecretId=args.token_secret)["SecretString"])
    if args.db_secret:
        raw = secrets.get_secret_value(SecretId=args.db_secret)["SecretString"]
        db_url = db_url_from_rds_secret(raw)
    elif args.db_url:
        db_url = args.db_url
    else:
        print("control_boot: give --db-secret or --db-url", file=sys.stderr)
        return 2
    write_env_file(Path(args.out), {"OPTFLEET_BOOTSTRAP_TOKEN": token, "OPTFLEET_DB_URL": db_url})
    print(f"control_boot: wrote {args.out}", file=sys.stderr)
    return 0


def _poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        time.sleep(POLL_S)


def instance_identity(imds_endpoint: str) -> Dict[str, str]:
    """This instance's id and region through IMDSv2 (2 s timeouts)."""
    import requests

    token = requests.put(
        f"{imds_endpoint}/latest/api/token",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        timeout=2,
    )
    token.raise_for_status()
    headers = {"X-aws-ec2-metadata-token": token.text}
    reply = requests.get(
        f"{imds_endpoint}/latest/dynamic/instance-identity/document", headers=headers, timeout=2
    )
    reply.raise_for_status()
    document = reply.json()
    return {"instance_id": document["instanceId"], "region": document["region"]}


def _instance_id(args: argparse.Namespace) -> str:
    if args.instance_id:
        return str(args.instance_id)
    return instance_identity(args.imds)["instance_id"]


def attach_volume(args: argparse.Namespace) -> int:
    """Attach the data volume to this instance once the previous holder has let go of it."""
    ec2 = _client("ec2", args.region)
    instance_id = _instance_id(args)

    def volume() -> Dict[str, Any]:
        found: List[Dict[str, Any]] = ec2.describe_volumes(VolumeIds=[args.volume_id])["Volumes"]
        return found[0]

    def mine() -> bool:
        return any(
            a["InstanceId"] == instance_id and a["State"] in ("attaching", "attached")
            for a in volume().get("Attachments", [])
        )

    if not mine():
        _poll(lambda: volume()["State"] == "available", args.timeout, f"{args.volume_id} free")
        ec2.attach_volume(VolumeId=args.volume_id, InstanceId=instance_id, Device=args.device)
    _poll(
        lambda: any(
            a["InstanceId"] == instance_id and a["State"] == "attached"
            for a in volume().get("Attachments", [])
        ),
        args.timeout,
        f"{args.volume_id} attached",
    )
    print(f"control_boot: {args.volume_id} attached to {instance_id}", file=sys.stderr)
    return 0


def attach_interface(args: argparse.Namespace) -> int:
    """Attach the fixed-address network interface (the API's stable IP) as device 1."""
    ec2 = _client("ec2", args.region)
    instance_id = _instance_id(args)

    def interface() -> Dict[str, Any]:
        found: List[Dict[str, Any]] = ec2.describe_network_interfaces(
            NetworkInterfaceIds=[args.interface_id]
        )["NetworkInterfaces"]
        return found[0]

    if interface().get("Attachment", {}).get("InstanceId") != instance_id:
        _poll(
            lambda: interface()["Status"] == "available",
            args.timeout,
            f"{args.interface_id} free",
        )
        ec2.attach_network_interface(
            NetworkInterfaceId=args.interface_id, InstanceId=instance_id, DeviceIndex=1
        )
    print(f"control_boot: {args.interface_id} attached to {instance_id}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m infra.runtime.control_boot")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"))
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("write-env", help="secrets -> the server's 0600 environment file")
    env.add_argument("--out", required=True)
    env.add_argument("--token-secret", required=True)
    env.add_argument("--db-secret")
    env.add_argument("--db-url")
    env.set_defaults(func=write_env)
    for name, func, id_flag in (
        ("attach-volume", attach_volume, "--volume-id"),
        ("attach-interface", attach_interface, "--interface-id"),
    ):
        cmd = sub.add_parser(name)
        cmd.add_argument(id_flag, required=True)
        cmd.add_argument("--instance-id", help="default: this instance, from IMDSv2")
        cmd.add_argument("--imds", default="http://169.254.169.254")
        cmd.add_argument("--timeout", type=float, default=ATTACH_TIMEOUT_S)
        cmd.set_defaults(func=func)
        if name == "attach-volume":
            cmd.add_argument("--device", default="/dev/sdf")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; one line on stderr and exit 1 on failure."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:  # one readable line for cloud-init's log, whatever failed
        print(f"control_boot: {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
