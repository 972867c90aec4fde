"""Session-wide services shared by the test suites."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.postgres import PostgresCluster

# Modules whose tests take the most wall time (the --durations table of a full `make test`):
# booted twins, 1,000-worker loads, kill and restart matrices, the demo, CDK synth and moto
# deploys. `pytest -m "not slow"` (make test-fast) leaves them out: docs/development.md.
SLOW_MODULES = (
    "tests/twin/test_twin.py",
    "tests/reliability/test_load.py",
    "tests/reliability/test_kill_matrix.py",
    "tests/reliability/test_pool_hammer.py",
    "tests/reliability/test_server_crash.py",
    "tests/reliability/test_postgres_restart.py",
    "tests/demo/test_demo.py",
    "tests/infra/test_moto_deploy.py",
    "tests/infra/test_cli_synth.py",
    "tests/infra/test_control_moto.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of ``SLOW_MODULES`` (and any marked by hand) ``slow``."""
    root = config.rootpath
    for item in items:
        if item.path.relative_to(root).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster per test session, on loopback."""
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser).

    One per session for every suite that needs it: Playwright's sync API allows one at a time.
    """
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: make system-deps installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
