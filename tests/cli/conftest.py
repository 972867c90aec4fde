"""Fixtures for the operator CLI tests: a real server, moto's server mode, the CLI as a process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from optfleet.cli import main
from tests.support.ports import free_port, wait_until
from tests.support.server import RunningServer

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture(scope="package")
def server() -> Iterator[RunningServer]:
    """One suggestion server for the whole CLI package (each test makes its own experiment)."""
    with RunningServer.start() as running:
        yield running


class MotoServer:
    """`moto_server` on loopback; ``env`` points boto3 and the CLI at it, dummy credentials."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        self._proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ready, timeout_s=30, what=f"moto server on {self.url}")
        self.env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def _ready(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {self._proc.returncode}")
        try:
            return requests.get(f"{self.url}/moto-api/", timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client(service, endpoint_url=self.url)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    running = MotoServer()
    try:
        yield running
    finally:
        running.stop()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 120, process: bool = False
) -> CliResult:
    """Run `optfleet ARGS` with only ``env`` for SIGOPT_*/AWS_* settings; capture its output.

    In this process by default (fast: no interpreter start-up per call); ``process=True`` runs the
    real entry point as a separate process.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGOPT_", "AWS_"))}
    full_env.update(env or {})
    if not process:
        return _run_in_process(list(args), full_env)
    completed = subprocess.run(
        [sys.executable, "-m", "optfleet.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout_s,
        cwd=REPO,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def _run_in_process(argv: list[str], env: dict[str, str]) -> CliResult:
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = int(exc.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CliResult(code, out.getvalue(), err.getvalue())
