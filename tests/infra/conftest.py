"""Fixtures for the infra tests: the wheelhouse inputs and a moto server on loopback."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.support import REPO, VENV_BIN
from tests.support.ports import free_port, wait_until


@pytest.fixture(scope="session", autouse=True)
def _wheelhouse_inputs() -> None:
    """The infra tests need the wheels `make wheelhouse` downloads; say so up front."""
    for folder in (REPO / ".stamps" / "wheelhouse", REPO / ".stamps" / "build-wheels"):
        if not any(folder.glob("*.whl")):
            pytest.fail(f"{folder} has no wheels: run `make wheelhouse` (part of `make deps`)")


@dataclass
class MotoServer:
    """A moto server in server mode; ``endpoint`` uses the name localhost (see cdk-notes.md)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"

    def reset(self) -> None:
        """Forget every AWS resource (POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310 - moto on loopback
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - http to loopback
            pass


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - http to loopback
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server per test module, stopped by its own pid."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = MotoServer(port=port, process=process)
    try:
        wait_until(
            lambda: _answers(f"{server.endpoint}/moto-api/"), timeout_s=60, what="moto server"
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def repo() -> Path:
    """The checkout the CDK app lives in."""
    return REPO
