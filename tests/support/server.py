"""Run the suggestion server as a real subprocess on loopback, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from optfleet.local_server import server_command, wait_healthy
from tests.support.ports import free_port


class RunningServer:
    """`python -m suggestion_server` on 127.0.0.1 with a bootstrap token.

    ``url`` has no trailing slash, as the official client wants it. ``db_url`` None means a
    SQLite file in a temporary directory removed on ``stop()``.
    """

    def __init__(
        self,
        db_url: str | None = None,
        token: str = "test-token",
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        workers: int = 1,
    ) -> None:
        self.workers = workers
        self._tmp: Path | None = None
        if db_url is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="optfleet-srv-"))
            db_url = f"sqlite:///{self._tmp / 'optfleet.db'}"
        self.db_url = db_url
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **(env or {}), "OPTFLEET_BOOTSTRAP_TOKEN": token}
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="optfleet-srv-", suffix=".log")[1])
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls,
        db_url: str | None = None,
        token: str = "test-token",
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> RunningServer:
        """Start the server; ``workers`` > 1 runs ``--workers N`` (uvicorn's supervisor)."""
        server = cls(db_url=db_url, token=token, env=env, workers=workers)
        server._launch()
        return server

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                server_command(self.db_url, self.port, self.workers),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                # Its own process group, so that kill() also reaches the worker processes.
                start_new_session=self.workers > 1,
            )
        wait_healthy(self.url, self._proc, self.log_path, timeout_s=60)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown)."""
        if self._proc is not None and self._proc.poll() is None:
            if self.workers > 1:
                os.killpg(self._proc.pid, signal.SIGKILL)
            else:
                self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=30)

    def restart(self) -> None:
        """Start again on the same port and database after ``kill`` or ``stop_process``."""
        self._launch()

    def stop_process(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def stop(self) -> None:
        self.stop_process()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
