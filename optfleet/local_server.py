"""Start the suggestion server as a subprocess on a free loopback port (what the demo runs)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(db_url: str, port: int, workers: int = 1) -> list[str]:
    """The argv that serves ``db_url`` on 127.0.0.1:``port`` with this interpreter."""
    return [
        sys.executable,
        "-m",
        "suggestion_server",
        "--db",
        db_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--workers", str(workers)] if workers > 1 else []),
    ]


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    timeout_s: float,
    verify: bool | str = True,
) -> None:
    """Poll ``url``/health until it answers 200; raise with the log's tail if the process
    exits first, or after ``timeout_s``. ``verify``: a CA bundle for an https ``url``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"suggestion server exited with {proc.returncode}:\n{tail}")
        try:
            if requests.get(f"{url}/health", timeout=1, verify=verify).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"suggestion server not healthy after {timeout_s:.0f} s (log {log_path})")


class LocalServer:
    """`python -m suggestion_server` on SQLite in its own temporary directory.

    The token is registered through ``OPTFLEET_BOOTSTRAP_TOKEN``. ``detach()`` leaves the process
    (and its directory) running after this program exits, for ``optfleet demo --keep-server``.
    """

    def __init__(self, workdir: Path | None = None, token: str | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="optfleet-demo-server-"))
        self.token = token or secrets.token_urlsafe(24)
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{self.workdir / 'optfleet.db'}"
        self.log_path = self.workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._detached = False

    @property
    def pid(self) -> int | None:
        """The server's process id once started."""
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 60.0) -> None:
        """Launch the server and wait (bounded) until /health answers."""
        env = {**os.environ, "OPTFLEET_BOOTSTRAP_TOKEN": self.token}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
                server_command(self.db_url, self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            wait_healthy(self.url, self._proc, self.log_path, timeout_s)
        except RuntimeError:
            self.stop()
            raise

    def detach(self) -> None:
        """Keep the server running when this object is stopped or the program exits."""
        self._detached = True

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a bound) and remove its directory."""
        if self._detached:
            return
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=15)
        shutil.rmtree(self.workdir, ignore_errors=True)
