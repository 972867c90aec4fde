"""Control-plane settings (`optfleet-control`): read from CDK context, validated before synth.

Same rules as the fleet's settings (infra/settings.py): every problem is one line naming the
setting. Imports nothing from the CDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from infra.instance_types import architecture_of
from infra.settings import (
    _ACCOUNT,
    _REGION,
    _SECRET_ARN,
    _SUBNET_ID,
    _VPC_ID,
    SettingsError,
    _as_int,
    _as_list,
    _as_optional_str,
    _log_retention_days,
    _match,
    _optional_match,
    check_each_instance_type,
)

CONTROL_STACK_NAME = "optfleet-control"
SIZES = ("small", "ha")
CONTROL_CONTEXT_KEYS = (
    "size",
    "instance_type",
    "server_count",
    "api_port",
    "data_volume_gb",
    "data_snapshot_id",
    "data_volume_id",
    "snapshot_retain_count",
    "db_instance_class",
    "db_storage_gb",
    "db_multi_az",
    "delete_data",
    "token_secret",
    "domain",
    "certificate_arn",
    "vpc_id",
    "subnet_ids",
    "availability_zone",
    "log_retention_days",
    "account",
    "region",
)
_AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CERT_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_VOLUME = re.compile(r"^vol-[0-9a-f]{8,17}$")
_SNAPSHOT = re.compile(r"^snap-[0-9a-f]{8,17}$")
_DB_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class ControlSettings:
    """Everything that shapes the control plane, already validated."""

    size: str = "small"
    instance_type: str = "t3.small"
    server_count: int = 1
    api_port: int = 8080
    data_volume_gb: int = 20
    data_snapshot_id: Optional[str] = None
    data_volume_id: Optional[str] = None
    snapshot_retain_count: int = 7
    db_instance_class: str = "db.t4g.micro"
    db_storage_gb: int = 20
    db_multi_az: bool = True
    delete_data: bool = False
    # Complete ARN of an existing token secret to use instead of generating one.
    token_secret: Optional[str] = None
    domain: Optional[str] = None
    certificate_arn: Optional[str] = None
    vpc_id: Optional[str] = None
    subnet_ids: tuple[str, ...] = ()
    availability_zone: Optional[str] = None
    log_retention_days: int = 30
    account: Optional[str] = None
    region: Optional[str] = None

    @property
    def stack_name(self) -> str:
        """CloudFormation stack name of the control plane (fleets import its exports by it)."""
        return CONTROL_STACK_NAME

    @property
    def is_ha(self) -> bool:
        """Several servers behind a load balancer over PostgreSQL on RDS."""
        return self.size == "ha"

    @property
    def db_pool_size(self) -> int:
        """Database connections per server (``--db-pool-size``). On RDS all servers together,
        at 1.5x this at peaks, stay within ~75 connections, under the smallest class's limit."""
        if not self.is_ha:
            return 32
        return max(4, min(32, 50 // self.server_count))

    @property
    def public(self) -> bool:
        """A public HTTPS endpoint (internet-facing ALB, port 443) was asked for."""
        return self.domain is not None


def load_control_settings(context: Mapping[str, Any]) -> ControlSettings:
    """Validate the control plane's context keys (``-c key=value``)."""
    raw = {k: context[k] for k in CONTROL_CONTEXT_KEYS if context.get(k) is not None}
    size = (_as_optional_str("size", raw) or "small").lower()
    if size not in SIZES:
        raise SettingsError("size", f"expected one of {', '.join(SIZES)}; got {size!r}")
    (instance_type,) = check_each_instance_type(
        [_as_optional_str("instance_type", raw) or "t3.small"]
    )
    if architecture_of(instance_type) != "x86_64":
        raise SettingsError(
            "instance_type",
            f"the server wheelhouse is built for x86_64; got the arm64 type {instance_type!r}",
        )
    default_count = 2 if size == "ha" else 1
    server_count = _as_int("server_count", raw, default_count, minimum=1, maximum=20)
    if size == "small" and server_count != 1:
        raise SettingsError("server_count", "size=small runs exactly 1 server; use size=ha")
    if size == "ha" and server_count < 2:
        raise SettingsError("server_count", f"size=ha needs at least 2 servers; got {server_count}")

    vpc_id = _as_optional_str("vpc_id", raw)
    subnet_ids = tuple(_as_list("subnet_ids", raw, ()))
    availability_zone = _as_optional_str("availability_zone", raw)
    if vpc_id is not None:
        _match("vpc_id", vpc_id, _VPC_ID, "a VPC id like vpc-0123abcd")
        if len(subnet_ids) < 2:
            raise SettingsError(
                "subnet_ids", "needs at least 2 subnets in different AZs with vpc_id"
            )
        if size == "small" and availability_zone is None:
            raise SettingsError(
                "availability_zone",
                "required with vpc_id for size=small: the AZ of the first subnet, where the "
                "data volume lives (e.g. us-east-1a)",
            )
    elif subnet_ids:
        raise SettingsError("vpc_id", "required with subnet_ids")
    for subnet in subnet_ids:
        _match("subnet_ids", subnet, _SUBNET_ID, "subnet ids like subnet-0123abcd")
    if availability_zone is not None:
        _match("availability_zone", availability_zone, _AZ, "an AZ like us-east-1a")

    data_volume_id = _optional_match(
        "data_volume_id",
        _as_optional_str("data_volume_id", raw),
        _VOLUME,
        "a volume id like vol-0123abcd",
    )
    if data_volume_id is not None:
        if size != "small":
            raise SettingsError("data_volume_id", "only size=small keeps its data on a volume")
        if availability_zone is None:
            raise SettingsError("availability_zone", "required with data_volume_id (its AZ)")
        if raw.get("data_snapshot_id"):
            raise SettingsError("data_snapshot_id", "give data_volume_id or data_snapshot_id")

    domain = _as_optional_str("domain", raw)
    certificate_arn = _as_optional_str("certificate_arn", raw)
    if (domain is None) != (certificate_arn is None):
        missing = "certificate_arn" if certificate_arn is None else "domain"
        raise SettingsError(missing, "domain and certificate_arn go together (public HTTPS)")
    if domain is not None:
        _match("domain", domain.lower(), _DOMAIN, "a DNS name like optfleet.example.com")
    if certificate_arn is not None:
        _match("certificate_arn", certificate_arn, _CERT_ARN, "an ACM certificate ARN")

    log_retention_days = _log_retention_days(raw)
    return ControlSettings(
        size=size,
        instance_type=instance_type,
        server_count=server_count,
        api_port=_as_int("api_port", raw, 8080, minimum=1024, maximum=65535),
        data_volume_gb=_as_int("data_volume_gb", raw, 20, minimum=1, maximum=16384),
        data_snapshot_id=_optional_match(
            "data_snapshot_id",
            _as_optional_str("data_snapshot_id", raw),
            _SNAPSHOT,
            "a snapshot id like snap-0123abcd",
        ),
        data_volume_id=data_volume_id,
        snapshot_retain_count=_as_int("snapshot_retain_count", raw, 7, minimum=1, maximum=1000),
        db_instance_class=_match(
            "db_instance_class",
            _as_optional_str("db_instance_class", raw) or "db.t4g.micro",
            _DB_CLASS,
            "an RDS instance class like db.t4g.micro",
        ),
        db_storage_gb=_as_int("db_storage_gb", raw, 20, minimum=20, maximum=65536),
        db_multi_az=_as_bool("db_multi_az", raw, True),
        delete_data=_as_bool("delete_data", raw, False),
        token_secret=_optional_match(
            "token_secret",
            _as_optional_str("token_secret", raw),
            _SECRET_ARN,
            "the complete ARN of an existing Secrets Manager secret",
        ),
        domain=domain.lower() if domain else None,
        certificate_arn=certificate_arn,
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        availability_zone=availability_zone,
        log_retention_days=log_retention_days,
        account=_optional_match(
            "account", _as_optional_str("account", raw), _ACCOUNT, "a 12-digit account id"
        ),
        region=_optional_match(
            "region", _as_optional_str("region", raw), _REGION, "a region like us-east-1"
        ),
    )


def _as_bool(setting: str, raw: Mapping[str, Any], default: bool) -> bool:
    value = raw.get(setting)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return default if text == "" else False
    raise SettingsError(setting, f"expected true or false; got {value!r}")
