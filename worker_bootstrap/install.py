"""``worker-bootstrap install``: the systemd unit, the env file (0600) and the state directory."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

from worker_bootstrap.config import KEYS, ConfigError, parse_env_file
from worker_bootstrap.journal import atomic_write

ENV_FILE = "/etc/optfleet/agent.env"
STATE_DIR = "/var/lib/optfleet"

UNIT_TEMPLATE = """\
[Unit]
Description=optfleet worker agent (evaluates suggestions of one experiment)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=simple
ExecStart={exec_start} run --config {env_file}
WorkingDirectory={state_dir}
Restart=on-failure
RestartSec=10
# SIGTERM goes to the agent only; it forwards it to the evaluation and waits a grace period.
KillMode=mixed
TimeoutStopSec=90
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
"""


def running_executable() -> str:
    """Absolute path of the ``worker-bootstrap`` executable running now (or found on PATH)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "worker-bootstrap" and argv0.exists():
        return str(argv0.resolve() if not argv0.is_absolute() else argv0)
    found = shutil.which("worker-bootstrap")
    if found:
        return str(Path(found).absolute())
    raise ConfigError("cannot find the worker-bootstrap executable; pass --executable PATH")


def strip_root(path: str, root: Path) -> str:
    """``path`` as seen from inside ``root`` (unchanged when it is outside the root)."""
    resolved_root = str(root.absolute()).rstrip("/")
    if resolved_root and path.startswith(resolved_root + "/"):
        return path[len(resolved_root) :]
    return path


def parse_sets(pairs: List[str]) -> Dict[str, str]:
    """Validate ``KEY=VALUE`` pairs against the agent's known keys."""
    values: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        if key not in KEYS:
            raise ConfigError(f"--set {key}: unknown key; expected one of {', '.join(KEYS)}")
        if "\n" in value or "\r" in value:
            raise ConfigError(f"--set {key}: the value must be one line")
        values[key] = value
    return values


def install(
    root: Path,
    sets: Dict[str, str],
    unit_name: str = "optfleet-agent",
    executable: Optional[str] = None,
) -> List[Path]:
    """Write the three artefacts under ``root``; idempotent. Returns the paths written."""
    exe = strip_root(executable or running_executable(), root)
    if not exe.startswith("/"):
        raise ConfigError(f"executable {exe!r}: expected an absolute path")
    unit_dir = root / "etc/systemd/system"
    env_path = root / ENV_FILE.lstrip("/")
    state_dir = root / STATE_DIR.lstrip("/")
    unit_dir.mkdir(parents=True, exist_ok=True)
    env_path.parent.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)

    existing: Dict[str, str] = {}
    if env_path.exists():
        existing = parse_env_file(env_path.read_text(), name=str(env_path))
    existing.update(sets)
    lines = ["# optfleet agent settings (written by worker-bootstrap install)"]
    lines += [f"{key}={_quote(value)}" for key, value in sorted(existing.items())]
    atomic_write(env_path, ("\n".join(lines) + "\n").encode())
    os.chmod(env_path, 0o600)

    unit_path = unit_dir / f"{unit_name}.service"
    unit = UNIT_TEMPLATE.format(exec_start=exe, env_file=ENV_FILE, state_dir=STATE_DIR)
    atomic_write(unit_path, unit.encode())
    os.chmod(unit_path, 0o644)
    return [unit_path, env_path, state_dir]


def _quote(value: str) -> str:
    if value and not any(ch in value for ch in " \t\"'#;\\"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
