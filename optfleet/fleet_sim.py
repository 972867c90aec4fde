"""A simulated EC2 fleet on one machine: per instance, its own IMDSv2 emulator and a real agent.

Each :class:`SimulatedInstance` is what an EC2 instance is to the agent: an instance metadata
service (``emulators.imds``) with its own id, type, zone and lifecycle, a state directory
that survives reboots, and a ``worker-bootstrap run`` process started from an env file, exactly as
the systemd unit starts it. A *reboot* SIGKILLs the agent's whole process group (evaluation
included) and starts it again with the same identity and disk; a *termination* kills it and its
metadata service for good; a *spot interruption* is scheduled on the metadata service.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.imds import ImdsEmulator, InstanceIdentity
from worker_bootstrap.journal import Journal

CHECKPOINT_NAME = "hartmann6-checkpoint.json"


def new_instance_id() -> str:
    """A fresh id shaped like EC2's (``i-`` + 17 hex digits)."""
    return "i-0" + secrets.token_hex(8)


def agent_executable() -> list[str]:
    """The argv prefix that runs the agent: the ``worker-bootstrap`` script beside this Python."""
    script = Path(sys.executable).with_name("worker-bootstrap")
    if script.exists():
        return [str(script)]
    found = shutil.which("worker-bootstrap")
    if found:
        return [found]
    return [
        sys.executable,
        "-c",
        "import sys; from worker_bootstrap.cli import main; sys.exit(main())",
    ]


@dataclass(frozen=True)
class InstanceSpec:
    """What the launch template would decide: type, zone, lifecycle."""

    instance_type: str
    availability_zone: str
    lifecycle: str  # "on-demand" or "spot"
    region: str = "us-east-1"
    ami_id: str = "ami-0demo00000000000"


@dataclass
class Checkpoint:
    """Progress the example objective saved for one suggestion."""

    suggestion_id: str
    step: int
    steps: int


@dataclass
class SimulatedInstance:
    """One instance: metadata service + state directory + agent process."""

    instance_id: str
    spec: InstanceSpec
    root: Path
    agent_settings: Mapping[str, str]
    agent_env: Mapping[str, str]
    experiment_id: str
    state: str = "pending"  # pending, running, rebooting, interrupted, terminated, finished
    boots: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    _imds: ImdsEmulator | None = None
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def state_dir(self) -> Path:
        """The instance's disk: journal and checkpoints (kept across reboots)."""
        return self.root / "state"

    @property
    def log_path(self) -> Path:
        """The agent's stdout (one JSON event per line), appended across boots."""
        return self.root / "agent.log"

    @property
    def config_path(self) -> Path:
        """The env file the agent reads, like /etc/optfleet/agent.env."""
        return self.root / "agent.env"

    def power_on(self) -> None:
        """Start the metadata service (first boot only) and the agent."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._imds is None:
            identity = InstanceIdentity(
                instance_id=self.instance_id,
                instance_type=self.spec.instance_type,
                availability_zone=self.spec.availability_zone,
                region=self.spec.region,
                lifecycle=self.spec.lifecycle,
                ami_id=self.spec.ami_id,
            )
            self._imds = ImdsEmulator(identity=identity, tags={"Experiment": self.experiment_id})
            imds_url = self._imds.start()
            settings = {
                **self.agent_settings,
                "OPTFLEET_EXPERIMENT_ID": self.experiment_id,
                "OPTFLEET_STATE_DIR": str(self.state_dir),
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url,
                "AWS_REGION": self.spec.region,
            }
            # Mode 0600 like the real env file: it holds the API token.
            fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.writelines(f"{key}={value}\n" for key, value in settings.items())
        self._start_agent()

    def _start_agent(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SIGOPT_", "OPTFLEET_", "AWS_"))
        }
        env.update(self.agent_env)
        self._proc = subprocess.Popen(  # noqa: S603 - our own agent executable
            [*agent_executable(), "run", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.root,
            start_new_session=True,  # own process group: a reboot kills it all
        )
        self.boots += 1
        self.state = "running"
        self._reader = threading.Thread(target=self._read_events, args=(self._proc,), daemon=True)
        self._reader.start()

    def _read_events(self, proc: subprocess.Popen[str]) -> None:
        if proc.stdout is None:
            return
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    with self._lock:
                        self.events.append(record)

    def recent_events(self) -> list[dict[str, Any]]:
        """A copy of the agent's parsed event lines so far (all boots)."""
        with self._lock:
            return list(self.events)

    @property
    def agent_running(self) -> bool:
        """True while the agent process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def agent_exit_code(self) -> int | None:
        """The agent's exit status once it ended."""
        return None if self._proc is None else self._proc.poll()

    def _kill_agent(self) -> None:
        if self._proc is None:
            return
        # The whole group: the evaluation may outlive an agent that already exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=30)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def freeze(self) -> bool:
        """SIGSTOP the agent (its evaluation runs in a session of its own and keeps going).

        A frozen agent sends nothing more, so what its journal says right now stays true until it
        is thawed or killed. False when the agent is not running.
        """
        if not self.agent_running or self._proc is None:
            return False
        try:
            os.killpg(self._proc.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        return True

    def thaw(self) -> None:
        """SIGCONT the agent after :meth:`freeze`."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGCONT)

    def journal_stages(self) -> dict[str, str]:
        """Suggestion id -> the agent's journal stage (``created``, ``evaluated``, ``reported``).

        The agent journals ``evaluated`` before it posts an observation and ``reported`` after:
        while it is frozen with no ``evaluated`` record, no observation of it can be in flight.
        """
        if not (self.state_dir / "journal").is_dir():
            return {}
        journal = Journal(self.state_dir)
        return {entry.suggestion_id: entry.stage for entry in journal.entries(self.experiment_id)}

    def reboot(self) -> None:
        """SIGKILL agent and evaluation (power loss), then boot again: same id, same disk."""
        self.state = "rebooting"
        self._kill_agent()
        self._start_agent()

    def terminate(self) -> None:
        """Gone for good: agent, evaluation and metadata service."""
        self._kill_agent()
        if self._imds is not None:
            self._imds.stop()
        self.state = "terminated"

    def schedule_spot_interruption(self, in_s: float = 120.0) -> None:
        """Publish a spot interruption notice on this instance's metadata service."""
        if self._imds is None:
            raise RuntimeError(f"{self.instance_id} is not powered on")
        self._imds.schedule_spot_action(action="terminate", in_s=in_s)
        self.state = "interrupted"

    def stop_agent(self, grace_s: float = 10.0) -> None:
        """SIGTERM the agent's group, SIGKILL after ``grace_s``; stop the metadata service."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=grace_s)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self._kill_agent()
        if self._imds is not None:
            self._imds.stop()
            self._imds = None

    def checkpoints(self) -> list[Checkpoint]:
        """The example objective's checkpoints on this instance's disk, in any subdirectory.

        The agent creates and removes checkpoint directories while this runs: ``os.walk``
        skips directories that vanish mid-walk (``Path.rglob`` raises on them).
        """
        found = []
        for directory, _subdirs, files in os.walk(self.state_dir):
            if CHECKPOINT_NAME not in files:
                continue
            try:
                data = json.loads((Path(directory) / CHECKPOINT_NAME).read_text())
                found.append(
                    Checkpoint(str(data["suggestion_id"]), int(data["step"]), int(data["steps"]))
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being replaced right now, or removed with its accepted observation
        return found
