"""Fixtures for the agent tests: one real suggestion server for the whole agent suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import Api
from tests.support.server import RunningServer

TOKEN = "agent-suite-token-5f2c9d"


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """The real suggestion server (SQLite in a temporary directory)."""
    with RunningServer.start(token=TOKEN) as running:
        yield running


@pytest.fixture()
def api(server: RunningServer) -> Api:
    return Api(server.url, server.token)


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path
