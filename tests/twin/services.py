"""The services the twin reaches, each a real process inside the twin's network namespace:
moto's server mode (AWS), the suggestion server (the API) and the IMDS emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import IO, Optional

import requests

from optfleet.local_server import server_command
from tests.infra.support import VENV_BIN
from tests.support.ports import wait_until
from tests.twin.netns import IMDS_ADDRESS, NetworkNamespace

MOTO_PORT = 4566
API_PORT = 8080
# The CLI and moto agree on the name localhost (cdk-notes.md); the twin reaches the same moto.
MOTO_ENDPOINT = f"http://localhost:{MOTO_PORT}"
API_URL = f"http://127.0.0.1:{API_PORT}"


def answers(url: str) -> bool:
    """True when ``url`` answers HTTP at all (call it inside the namespace)."""
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


class NamespacedProcess:
    """One long-running process inside the namespace, stopped by its own pid."""

    def __init__(
        self, netns: NetworkNamespace, argv: list[str], log_path: Path, env: dict[str, str]
    ) -> None:
        self.netns = netns
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        # `ip netns exec` execs the command, so the pid is the service's own.
        self.process = subprocess.Popen(
            self.netns.command(self.argv), stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )

    def wait_ready(self, url: str, timeout_s: float = 60) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:3]} exited: {self.log_tail()}")
            return self.netns.call(answers, url)

        wait_until(ready, timeout_s, f"{url} ({self.log_path.name})")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def moto(netns: NetworkNamespace, workdir: Path, env: dict[str, str]) -> NamespacedProcess:
    """moto's server mode on the namespace's 127.0.0.1."""
    argv = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(MOTO_PORT)]
    service = NamespacedProcess(netns, argv, workdir / "moto.log", env)
    service.start()
    service.wait_ready(f"{MOTO_ENDPOINT}/moto-api/")
    return service


def suggestion_server(
    netns: NetworkNamespace, workdir: Path, env: dict[str, str], token: str
) -> NamespacedProcess:
    """The suggestion server on SQLite, on the namespace's 127.0.0.1 (restartable: same db)."""
    argv = server_command(f"sqlite:///{workdir / 'optfleet.db'}", API_PORT)
    service = NamespacedProcess(
        netns, argv, workdir / "server.log", {**env, "OPTFLEET_BOOTSTRAP_TOKEN": token}
    )
    service.start()
    service.wait_ready(f"{API_URL}/health")
    return service


def imds_emulator(
    netns: NetworkNamespace,
    workdir: Path,
    env: dict[str, str],
    *,
    instance_id: str,
    lifecycle: str,
    role_name: str,
    tags: dict[str, str],
) -> NamespacedProcess:
    """The IMDSv2 emulator for one instance at 169.254.169.254:80, where the agent looks."""
    argv = [
        str(VENV_BIN / "python"), "-m", "emulators.imds",
        "--host", IMDS_ADDRESS, "--port", "80",
        "--instance-id", instance_id, "--lifecycle", lifecycle, "--role-name", role_name,
        *[arg for key, value in tags.items() for arg in ("--tag", f"{key}={value}")],
    ]  # fmt: skip
    service = NamespacedProcess(netns, argv, workdir / f"imds-{instance_id}.log", env)
    service.start()
    service.wait_ready(f"http://{IMDS_ADDRESS}/_emulator/stats")
    return service


def schedule_spot_interruption(netns: NetworkNamespace, action: str = "terminate") -> None:
    """The emulator's control API: a spot notice two minutes ahead, as AWS gives."""

    def post() -> None:
        response = requests.post(
            f"http://{IMDS_ADDRESS}/_emulator/spot-action",
            data=json.dumps({"action": action, "in_s": 120}),
            timeout=10,
        )
        response.raise_for_status()

    netns.call(post)
