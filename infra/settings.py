"""Fleet settings: read from CDK context (`-c key=value`) and/or a TOML file, validated up front.

Precedence: `-c key=value` > the TOML file named by `-c config=FILE` > defaults. Every problem is
reported as one line naming the setting, the value and what was expected, before anything is
synthesized. This module imports nothing from the CDK so errors come fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from infra.instance_types import UnknownInstanceType, architecture_of, check_instance_type

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python < 3.11
    import tomli as tomllib

# Tag keys optfleet sets itself; users cannot override them through `tags`.
RESERVED_TAG_KEYS = ("Experiment", "Project", "ManagedBy", "Stack")
WHEN_DONE_CHOICES = ("stay", "stop", "terminate")
# The only retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
DEFAULT_INSTANCE_TYPES = ("m7i.large",)

_EXPERIMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
)
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SSM_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]+$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{0,256}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_DEVICE = re.compile(r"^/dev/[a-z0-9]+$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SettingsError(ValueError):
    """A setting is missing or invalid; ``str()`` is one line naming the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"setting {setting!r}: {problem}")
        self.setting = setting


@dataclass(frozen=True)
class FleetSettings:
    """Everything that shapes one experiment's fleet, already validated."""

    experiment_id: str
    project: str = "optfleet"
    api_url: Optional[str] = None
    token_secret: Optional[str] = None
    fleet_size: int = 1
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    on_demand_base: int = 0
    spot_percentage: int = 0
    max_price: Optional[float] = None
    root_volume_gb: int = 20
    root_device_name: str = "/dev/xvda"
    vpc_id: Optional[str] = None
    subnet_ids: tuple[str, ...] = ()
    workload: Optional[Path] = None
    command: Optional[str] = None
    ami: Optional[str] = None
    tags: Mapping[str, str] = field(default_factory=dict)
    log_retention_days: int = 30
    when_done: str = "stay"
    evaluation_timeout_s: Optional[int] = None
    max_evaluations: Optional[int] = None
    # Dollar cap the agents enforce (OPTFLEET_MAX_COST_USD); with budget_alert_email also an
    # AWS Budget on the Experiment cost allocation tag.
    max_cost_usd: Optional[float] = None
    budget_alert_email: Optional[str] = None
    # Name of a control-plane stack (`optfleet-control`) whose exports give the API URL, the
    # token secret, the VPC and subnets, and the security group that may reach the API.
    control: Optional[str] = None
    account: Optional[str] = None
    region: Optional[str] = None

    @property
    def stack_name(self) -> str:
        """CloudFormation stack name of this experiment's fleet."""
        return f"optfleet-{self.experiment_id}"

    @property
    def architecture(self) -> str:
        """``x86_64`` or ``arm64``: the one architecture all instance types share."""
        return architecture_of(self.instance_types[0])

    @property
    def uses_spot(self) -> bool:
        """True when part of the fleet runs on Spot capacity."""
        return self.spot_percentage > 0

    @property
    def api_port(self) -> Optional[int]:
        """TCP port the agent reaches the API on (from ``api_url``), or None without one."""
        if self.api_url is None or self.control is not None:
            return None  # with a control plane, its exported client security group opens the port
        parts = urlsplit(self.api_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


SETTING_NAMES = tuple(
    f for f in FleetSettings.__dataclass_fields__ if f not in ("account", "region")
)
CONTEXT_KEYS = (*SETTING_NAMES, "account", "region")


def load_settings(context: Mapping[str, Any], *, cwd: Path) -> FleetSettings:
    """Merge the TOML file named by ``context['config']`` (if any) with ``context`` and validate.

    ``context`` holds raw CDK context values (strings from `-c`, or typed values from cdk.json);
    relative paths are resolved against ``cwd`` (or the TOML file's folder for its own keys).
    """
    raw: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    config = context.get("config")
    if config is not None and str(config).strip():
        config_path = (cwd / str(config)).resolve()
        for key, value in _read_toml(config_path).items():
            raw[key] = value
            origin[key] = config_path.parent
    for key in CONTEXT_KEYS:
        if key in context and context[key] is not None:
            raw[key] = context[key]
            origin[key] = cwd
    return _validate(raw, origin, cwd)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError("config", f"cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("config", f"{str(path)!r} is not valid TOML: {exc}") from None
    for key in data:
        if key not in CONTEXT_KEYS:
            raise SettingsError(
                key, f"unknown setting in {path.name}; known: {', '.join(CONTEXT_KEYS)}"
            )
    return data


def _validate(raw: Mapping[str, Any], origin: Mapping[str, Path], cwd: Path) -> FleetSettings:
    if "experiment_id" not in raw or not str(raw["experiment_id"]).strip():
        raise SettingsError("experiment_id", "required (e.g. -c experiment_id=42)")
    experiment_id = str(raw["experiment_id"]).strip()
    _match("experiment_id", experiment_id, _EXPERIMENT_ID, "1-63 letters, digits or '-'")

    instance_types = tuple(
        check_each_instance_type(_as_list("instance_types", raw, DEFAULT_INSTANCE_TYPES))
    )
    if len({architecture_of(t) for t in instance_types}) > 1:
        raise SettingsError(
            "instance_types", f"mixes arm64 and x86_64 types: {', '.join(instance_types)}"
        )

    fleet_size = _as_int("fleet_size", raw, 1, minimum=1, maximum=5000)
    spot_percentage = _as_int("spot_percentage", raw, 0, minimum=0, maximum=100)
    on_demand_base = _as_int("on_demand_base", raw, 0, minimum=0, maximum=fleet_size)
    max_price = _as_float("max_price", raw)
    if max_price is not None and spot_percentage == 0:
        raise SettingsError("max_price", "only applies to Spot capacity; set spot_percentage > 0")

    vpc_id = _as_optional_str("vpc_id", raw)
    subnet_ids = tuple(_as_list("subnet_ids", raw, ()))
    if vpc_id is not None:
        _match("vpc_id", vpc_id, _VPC_ID, "a VPC id like vpc-0123abcd")
        if not subnet_ids:
            raise SettingsError("subnet_ids", "required with vpc_id (comma-separated subnet ids)")
    elif subnet_ids:
        raise SettingsError("vpc_id", "required with subnet_ids")
    for subnet in subnet_ids:
        _match("subnet_ids", subnet, _SUBNET_ID, "subnet ids like subnet-0123abcd")

    log_retention_days = _log_retention_days(raw)

    when_done = (_as_optional_str("when_done", raw) or "stay").lower()
    if when_done not in WHEN_DONE_CHOICES:
        raise SettingsError(
            "when_done", f"expected one of {', '.join(WHEN_DONE_CHOICES)}; got {when_done!r}"
        )
    if when_done == "stop" and spot_percentage > 0:
        # The group's Spot instances come from one-time requests, which EC2 cannot stop.
        raise SettingsError(
            "when_done", "'stop' cannot stop Spot instances; use 'terminate' with spot_percentage"
        )

    control = _optional_match(
        "control",
        _as_optional_str("control", raw),
        _STACK_NAME,
        "a CloudFormation stack name like optfleet-control",
    )
    if control is not None:
        for imported in ("api_url", "token_secret", "vpc_id", "subnet_ids"):
            if raw.get(imported) not in (None, "", [], ()):
                raise SettingsError(
                    imported, f"comes from the control plane {control!r}; drop one of the two"
                )

    if _as_optional_str("budget_alert_email", raw) and raw.get("max_cost_usd") in (None, ""):
        raise SettingsError("budget_alert_email", "needs max_cost_usd, the budget's limit")
    return FleetSettings(
        experiment_id=experiment_id,
        control=control,
        project=_check_tag_value("project", _as_optional_str("project", raw) or "optfleet"),
        api_url=_api_url(_as_optional_str("api_url", raw)),
        token_secret=_token_secret(_as_optional_str("token_secret", raw)),
        fleet_size=fleet_size,
        instance_types=instance_types,
        on_demand_base=on_demand_base,
        spot_percentage=spot_percentage,
        max_price=max_price,
        root_volume_gb=_as_int("root_volume_gb", raw, 20, minimum=8, maximum=16384),
        root_device_name=_match(
            "root_device_name",
            _as_optional_str("root_device_name", raw) or "/dev/xvda",
            _DEVICE,
            "/dev/NAME",
        ),
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        workload=_workload(raw, origin, cwd),
        command=_as_optional_str("command", raw),
        ami=_ami(_as_optional_str("ami", raw)),
        tags=_tags(raw.get("tags")),
        log_retention_days=log_retention_days,
        when_done=when_done,
        evaluation_timeout_s=_as_int(
            "evaluation_timeout_s", raw, None, minimum=1, maximum=30 * 86400
        ),
        max_evaluations=_as_int("max_evaluations", raw, None, minimum=1, maximum=10**9),
        max_cost_usd=_as_dollars("max_cost_usd", raw),
        budget_alert_email=_optional_match(
            "budget_alert_email",
            _as_optional_str("budget_alert_email", raw),
            _EMAIL,
            "an email address",
        ),
        account=_optional_match(
            "account", _as_optional_str("account", raw), _ACCOUNT, "a 12-digit account id"
        ),
        region=_optional_match(
            "region", _as_optional_str("region", raw), _REGION, "a region like us-east-1"
        ),
    )


def check_each_instance_type(names: list[str]) -> list[str]:
    """Validate every instance type name; raise SettingsError naming ``instance_types``."""
    if not names:
        raise SettingsError("instance_types", "needs at least one instance type")
    try:
        return [check_instance_type(name) for name in names]
    except UnknownInstanceType as exc:
        raise SettingsError("instance_types", str(exc)) from None


def _match(setting: str, value: str, pattern: re.Pattern[str], expected: str) -> str:
    if not pattern.match(value):
        raise SettingsError(setting, f"expected {expected}; got {value!r}")
    return value


def _optional_match(
    setting: str, value: Optional[str], pattern: re.Pattern[str], expected: str
) -> Optional[str]:
    return None if value is None else _match(setting, value, pattern, expected)


def _as_optional_str(setting: str, raw: Mapping[str, Any]) -> Optional[str]:
    value = raw.get(setting)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise SettingsError(setting, f"expected a string; got {value!r}")
    text = str(value).strip()
    return text or None


def _as_int(
    setting: str, raw: Mapping[str, Any], default: Optional[int], *, minimum: int, maximum: int
) -> Any:
    value = raw.get(setting)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, (bool, float)):
        raise SettingsError(setting, f"expected a whole number; got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(setting, f"expected a whole number; got {value!r}") from None
    if not minimum <= number <= maximum:
        raise SettingsError(
            setting, f"expected a whole number from {minimum} to {maximum}; got {number}"
        )
    return number


def _log_retention_days(raw: Mapping[str, Any]) -> int:
    """``log_retention_days``: one of the values CloudWatch Logs accepts (default 30)."""
    days: int = _as_int("log_retention_days", raw, 30, minimum=1, maximum=3653)
    if days not in LOG_RETENTION_DAYS:
        raise SettingsError(
            "log_retention_days",
            f"CloudWatch accepts only {', '.join(map(str, LOG_RETENTION_DAYS))}; got {days}",
        )
    return days


def _as_float(
    setting: str,
    raw: Mapping[str, Any],
    unit: str = "a price in USD per hour",
    example: str = "0.12",
    below: float = 1000,
) -> Optional[float]:
    value = raw.get(setting)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        raise SettingsError(setting, f"expected {unit} like {example}; got {value!r}") from None
    if not 0 < number < below:
        raise SettingsError(setting, f"expected {unit} above 0; got {value!r}")
    return number


def _as_dollars(setting: str, raw: Mapping[str, Any]) -> Optional[float]:
    return _as_float(setting, raw, unit="a number of US dollars", example="250", below=10**9)


def _as_list(setting: str, raw: Mapping[str, Any], default: tuple[str, ...]) -> list[str]:
    value = raw.get(setting)
    if value is None:
        return list(default)
    items = value if isinstance(value, list) else str(value).split(",")
    if not all(isinstance(item, str) for item in items):
        raise SettingsError(setting, f"expected a list of strings; got {value!r}")
    return [item.strip() for item in items if item.strip()]


def _api_url(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    url = value.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            "api_url", f"expected an http(s) URL like https://api.example.com; got {value!r}"
        )
    if parts.path.endswith("/v1"):
        raise SettingsError("api_url", f"give the base URL without /v1; got {value!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise SettingsError("api_url", f"has an invalid port; got {value!r}") from None
    return url


def _token_secret(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if value.startswith("arn:"):
        return _match("token_secret", value, _SECRET_ARN, "a Secrets Manager secret ARN")
    return _match("token_secret", value, _SECRET_NAME, "a Secrets Manager secret name or ARN")


def _ami(value: Optional[str]) -> Optional[str]:
    if value is None or _AMI_ID.match(value) or _SSM_NAME.match(value):
        return value
    raise SettingsError(
        "ami",
        f"expected an AMI id (ami-...) or a public SSM parameter name (/aws/...); got {value!r}",
    )


def _workload(raw: Mapping[str, Any], origin: Mapping[str, Path], cwd: Path) -> Optional[Path]:
    value = _as_optional_str("workload", raw)
    if value is None:
        return None
    path = (origin.get("workload", cwd) / value).resolve()
    if not path.is_dir():
        raise SettingsError("workload", f"expected a directory; {str(path)!r} is not one")
    return path


def _check_tag_value(setting: str, value: str) -> str:
    return _match(setting, value, _TAG_VALUE, "up to 256 letters, digits, spaces or _.:/=+-@")


def _tags(value: Any) -> dict[str, str]:
    if value is None or value == "":
        return {}
    pairs: list[tuple[str, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            key, eq, tag_value = item.partition("=")
            if not eq:
                raise SettingsError(
                    "tags", f"expected Key=Value pairs separated by commas; got {item.strip()!r}"
                )
            pairs.append((key.strip(), tag_value.strip()))
    else:
        raise SettingsError("tags", f"expected a table or Key=Value,... ; got {value!r}")
    tags: dict[str, str] = {}
    for key, tag_value in pairs:
        if key in RESERVED_TAG_KEYS:
            raise SettingsError("tags", f"{key!r} is set by optfleet and cannot be overridden")
        if key.lower().startswith("aws:"):
            raise SettingsError("tags", f"tag keys may not start with 'aws:'; got {key!r}")
        _match("tags", key, _TAG_KEY, "tag keys of 1-128 letters, digits, spaces or _.:/=+-@")
        tags[key] = _check_tag_value("tags", str(tag_value))
    return tags
