"""Agent settings: command-line flags > ``--config`` env file > process environment > tags.

Every setting has one key (the env-file / environment name). Values are validated here, and an
error names the key, the value and what was expected.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from worker_bootstrap.snapshots.location import SnapshotLocation, parse_location

KEYS = (
    "OPTFLEET_EXPERIMENT_ID",
    "SIGOPT_API_URL",
    "SIGOPT_API_TOKEN",
    "OPTFLEET_TOKEN_SECRET",
    "OPTFLEET_COMMAND",
    "OPTFLEET_WORKDIR",
    "OPTFLEET_STATE_DIR",
    "OPTFLEET_TIMEOUT",
    "OPTFLEET_MAX_EVALUATIONS",
    "OPTFLEET_WHEN_DONE",
    "OPTFLEET_LEASE_TTL",
    "OPTFLEET_EXPERIMENT_KIND",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    # Tuning knobs (documented in docs/agent.md); defaults suit production.
    "OPTFLEET_SPOT_POLL_INTERVAL",
    "OPTFLEET_PROGRESS_POLL_INTERVAL",
    "OPTFLEET_GRACE_PERIOD",
    "OPTFLEET_HTTP_TIMEOUT",
    "OPTFLEET_HTTP_ATTEMPTS",
    "OPTFLEET_CLAIM_SETTLE",
    "OPTFLEET_ADOPT_INTERVAL",
    "OPTFLEET_ADOPT_SCAN_ROWS",
    "OPTFLEET_SCAN_FILTERS",
    "OPTFLEET_ADOPT",
    "OPTFLEET_ORPHAN_DETECTION",
    "OPTFLEET_PAGE_LIMIT",
    "OPTFLEET_MAX_COST_USD",
    "OPTFLEET_PRICING",
    "OPTFLEET_CA_BUNDLE",
    "OPTFLEET_ALLOW_PLAINTEXT",
    # Checkpoint snapshots (docs/agent.md, "Checkpoints that travel").
    "OPTFLEET_CHECKPOINT_S3",
    "OPTFLEET_CHECKPOINT_INTERVAL",
    "OPTFLEET_CHECKPOINT_MAX_BYTES",
)

# Instance tags that may supply settings (never the token: tags are not secret).
TAG_ALIASES = {"Experiment": "OPTFLEET_EXPERIMENT_ID"}
TAG_FORBIDDEN = {"SIGOPT_API_TOKEN"}

WHEN_DONE = ("stay", "stop", "terminate")
ORPHAN_DETECTION = ("auto", "ec2", "lease")
EXPERIMENT_KINDS = ("auto", "core", "ai")  # ai: a SigOpt 8 AI experiment, driven through runs


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass
class Settings:
    """Resolved, validated agent settings."""

    experiment_id: str
    api_url: str
    token: Optional[str]
    token_secret: Optional[str]
    command: List[str]
    workdir: Optional[Path]
    state_dir: Path
    timeout_s: float = 86400.0
    max_evaluations: Optional[int] = None
    when_done: str = "stay"
    lease_ttl_s: float = 600.0
    imds_endpoint: str = "http://169.254.169.254"
    imds_disabled: bool = False
    region: Optional[str] = None
    spot_poll_s: float = 5.0
    progress_poll_s: float = 0.2  # how often the progress file is read while evaluating
    grace_s: float = 30.0
    http_timeout_s: float = 30.0
    http_attempts: int = 6
    claim_settle_s: Optional[float] = None
    adopt_interval_s: float = 60.0
    adopt_scan_rows: int = 100
    scan_filters: bool = True
    adopt: bool = True
    orphan_detection: str = "auto"
    experiment_kind: str = "auto"
    page_limit: Optional[int] = None
    max_cost_usd: Optional[float] = None
    pricing: bool = True
    ca_bundle: Optional[Path] = None  # the only CA the server's certificate may chain to
    allow_plaintext: bool = False  # http:// to a non-loopback host (the token in clear)
    checkpoint_s3: Optional[SnapshotLocation] = None  # None: checkpoints stay on this disk
    checkpoint_interval_s: float = 60.0  # at most one snapshot per interval while evaluating
    checkpoint_max_bytes: int = 10 * 1024**3  # a larger checkpoint directory is not uploaded
    sources: Dict[str, str] = field(default_factory=dict)

    @property
    def settle_s(self) -> float:
        """Claim settle period: longer than any request can take (timeout x attempts)."""
        if self.claim_settle_s is not None:
            return self.claim_settle_s
        return 2 * self.http_timeout_s + 5.0


def parse_env_file(text: str, name: str = "env file") -> Dict[str, str]:
    """Parse systemd EnvironmentFile syntax: ``KEY=VALUE`` lines, ``#``/``;`` comments, quotes."""
    values: Dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"{name} line {number}: expected KEY=VALUE, got {raw.strip()[:60]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = _unescape(value[1:-1])
        values[key] = value
    return values


def _unescape(text: str) -> str:
    out: List[str] = []
    chars = iter(text)
    for ch in chars:
        out.append(next(chars, "\\") if ch == "\\" else ch)
    return "".join(out)


def _number(key: str, text: str, minimum: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r}: expected a number of seconds") from None
    if value < minimum:
        raise ConfigError(f"{key}={text!r}: expected a number >= {minimum:g}")
    return value


def _integer(key: str, text: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r}: expected an integer") from None
    if value < minimum:
        raise ConfigError(f"{key}={text!r}: expected an integer >= {minimum}")
    return value


def _flag(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}={text!r}: expected true or false")


def layered(
    flags: Mapping[str, Optional[str]],
    env_file: Mapping[str, str],
    environ: Mapping[str, str],
    tags: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """Merge the sources by precedence; remembers nothing but the winning values."""
    merged: Dict[str, str] = {}
    for tag, value in (tags or {}).items():
        key = TAG_ALIASES.get(tag, tag)
        if key in KEYS and key not in TAG_FORBIDDEN:
            merged[key] = value
    for source in (environ, env_file):
        for key in KEYS:
            if key in source and source[key] != "":
                merged[key] = source[key]
    for key, flag in flags.items():
        if flag is not None:
            merged[key] = flag
    return merged


def needs_tags(values: Mapping[str, str]) -> bool:
    """Tags are read only when a required setting is still missing."""
    return not values.get("OPTFLEET_EXPERIMENT_ID") or not values.get("SIGOPT_API_URL")


def settings_from(values: Mapping[str, str], command: Optional[List[str]] = None) -> Settings:
    """Validate merged values into :class:`Settings`."""
    experiment = values.get("OPTFLEET_EXPERIMENT_ID", "").strip()
    if not experiment:
        raise ConfigError(
            "OPTFLEET_EXPERIMENT_ID is not set: pass --experiment ID, set it in the env file, "
            "or tag the instance with Experiment=ID"
        )
    api_url = values.get("SIGOPT_API_URL", "").strip()
    if not api_url:
        raise ConfigError("SIGOPT_API_URL is not set: pass --api-url URL (without /v1)")
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"SIGOPT_API_URL={api_url!r}: expected an http:// or https:// URL")
    api_url = api_url.rstrip("/")
    if api_url.endswith("/v1"):
        raise ConfigError(f"SIGOPT_API_URL={api_url!r}: give the base URL without /v1")
    if command is None:
        text = values.get("OPTFLEET_COMMAND", "")
        try:
            command = shlex.split(text)
        except ValueError as exc:
            raise ConfigError(f"OPTFLEET_COMMAND: cannot split {text[:60]!r}: {exc}") from None
    when_done = values.get("OPTFLEET_WHEN_DONE", "stay").strip().lower()
    if when_done not in WHEN_DONE:
        raise ConfigError(f"OPTFLEET_WHEN_DONE={when_done!r}: expected one of {WHEN_DONE}")
    detection = values.get("OPTFLEET_ORPHAN_DETECTION", "auto").strip().lower()
    if detection not in ORPHAN_DETECTION:
        raise ConfigError(
            f"OPTFLEET_ORPHAN_DETECTION={detection!r}: expected one of {ORPHAN_DETECTION}"
        )
    kind = values.get("OPTFLEET_EXPERIMENT_KIND", "auto").strip().lower() or "auto"
    if kind not in EXPERIMENT_KINDS:
        raise ConfigError(f"OPTFLEET_EXPERIMENT_KIND={kind!r}: expected one of {EXPERIMENT_KINDS}")
    settings = Settings(
        experiment_id=experiment,
        api_url=api_url,
        token=values.get("SIGOPT_API_TOKEN") or None,
        token_secret=values.get("OPTFLEET_TOKEN_SECRET") or None,
        command=list(command),
        workdir=Path(values["OPTFLEET_WORKDIR"]) if values.get("OPTFLEET_WORKDIR") else None,
        state_dir=Path(values.get("OPTFLEET_STATE_DIR") or "/var/lib/optfleet"),
        when_done=when_done,
        orphan_detection=detection,
        experiment_kind=kind,
        imds_endpoint=(
            values.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254"
        ).rstrip("/"),
        imds_disabled=_flag(
            "AWS_EC2_METADATA_DISABLED", values.get("AWS_EC2_METADATA_DISABLED", "")
        ),
        region=values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION") or None,
    )
    numbers = {
        "OPTFLEET_TIMEOUT": "timeout_s",
        "OPTFLEET_LEASE_TTL": "lease_ttl_s",
        "OPTFLEET_SPOT_POLL_INTERVAL": "spot_poll_s",
        "OPTFLEET_PROGRESS_POLL_INTERVAL": "progress_poll_s",
        "OPTFLEET_GRACE_PERIOD": "grace_s",
        "OPTFLEET_HTTP_TIMEOUT": "http_timeout_s",
        "OPTFLEET_CLAIM_SETTLE": "claim_settle_s",
        "OPTFLEET_ADOPT_INTERVAL": "adopt_interval_s",
        "OPTFLEET_CHECKPOINT_INTERVAL": "checkpoint_interval_s",
    }
    for key, attribute in numbers.items():
        if values.get(key):
            setattr(settings, attribute, _number(key, values[key]))
    for key in ("OPTFLEET_TIMEOUT", "OPTFLEET_LEASE_TTL", "OPTFLEET_HTTP_TIMEOUT"):
        if values.get(key) and float(values[key]) <= 0:
            raise ConfigError(f"{key}={values[key]!r}: expected a number > 0")
    if values.get("OPTFLEET_MAX_EVALUATIONS"):
        settings.max_evaluations = _integer(
            "OPTFLEET_MAX_EVALUATIONS", values["OPTFLEET_MAX_EVALUATIONS"], minimum=0
        )
    if values.get("OPTFLEET_HTTP_ATTEMPTS"):
        settings.http_attempts = _integer(
            "OPTFLEET_HTTP_ATTEMPTS", values["OPTFLEET_HTTP_ATTEMPTS"]
        )
    if values.get("OPTFLEET_PAGE_LIMIT"):
        settings.page_limit = _integer("OPTFLEET_PAGE_LIMIT", values["OPTFLEET_PAGE_LIMIT"])
    if values.get("OPTFLEET_ADOPT_SCAN_ROWS"):
        settings.adopt_scan_rows = _integer(
            "OPTFLEET_ADOPT_SCAN_ROWS", values["OPTFLEET_ADOPT_SCAN_ROWS"], minimum=0
        )
    if values.get("OPTFLEET_SCAN_FILTERS"):
        settings.scan_filters = _flag("OPTFLEET_SCAN_FILTERS", values["OPTFLEET_SCAN_FILTERS"])
    if values.get("OPTFLEET_ADOPT"):
        settings.adopt = _flag("OPTFLEET_ADOPT", values["OPTFLEET_ADOPT"])
    if values.get("OPTFLEET_PRICING"):
        settings.pricing = _flag("OPTFLEET_PRICING", values["OPTFLEET_PRICING"])
    if values.get("OPTFLEET_MAX_COST_USD"):
        from worker_bootstrap.cost.cap import parse_cap

        try:
            settings.max_cost_usd = parse_cap(
                values["OPTFLEET_MAX_COST_USD"], "OPTFLEET_MAX_COST_USD"
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    _transport(settings, values)
    _checkpoints(settings, values)
    settings.sources = {
        key: ("***" if key == "SIGOPT_API_TOKEN" else v) for key, v in values.items()
    }
    return settings


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _size(key: str, text: str) -> int:
    """Bytes: an integer, optionally with K, M, G or T (powers of 1024, ``B``/``iB`` allowed)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    if not number.isdigit():
        raise ConfigError(f"{key}={text!r}: expected a size in bytes, e.g. 5000000000 or 5G")
    return int(number) * _SIZE_UNITS[unit]


def _checkpoints(settings: Settings, values: Mapping[str, str]) -> None:
    """Where snapshots go (``s3://bucket/prefix``), how often, and how large at most."""
    location = values.get("OPTFLEET_CHECKPOINT_S3", "").strip()
    if location:
        try:
            settings.checkpoint_s3 = parse_location(location, "OPTFLEET_CHECKPOINT_S3")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if values.get("OPTFLEET_CHECKPOINT_MAX_BYTES"):
        settings.checkpoint_max_bytes = _size(
            "OPTFLEET_CHECKPOINT_MAX_BYTES", values["OPTFLEET_CHECKPOINT_MAX_BYTES"]
        )


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _transport(settings: Settings, values: Mapping[str, str]) -> None:
    """``OPTFLEET_CA_BUNDLE`` (pinned CA for https) and ``OPTFLEET_ALLOW_PLAINTEXT`` (plain
    http beyond loopback), checked against ``SIGOPT_API_URL``."""
    url = settings.api_url
    if values.get("OPTFLEET_ALLOW_PLAINTEXT"):
        settings.allow_plaintext = _flag(
            "OPTFLEET_ALLOW_PLAINTEXT", values["OPTFLEET_ALLOW_PLAINTEXT"]
        )
    bundle = values.get("OPTFLEET_CA_BUNDLE", "").strip()
    if bundle:
        if not url.startswith("https://"):
            raise ConfigError(
                f"OPTFLEET_CA_BUNDLE={bundle!r} is set but SIGOPT_API_URL={url!r} is not https://"
            )
        if not Path(bundle).is_file():
            raise ConfigError(
                f"OPTFLEET_CA_BUNDLE={bundle!r}: expected a readable PEM file of the CA that "
                "signed the server's certificate"
            )
        settings.ca_bundle = Path(bundle)
    if url.startswith("http://") and not settings.allow_plaintext and not is_loopback_url(url):
        raise ConfigError(
            f"SIGOPT_API_URL={url!r}: plain http to a host other than this machine sends the "
            "API token in clear; use https:// (with OPTFLEET_CA_BUNDLE) or set "
            "OPTFLEET_ALLOW_PLAINTEXT=1 to accept that"
        )
