"""Session-wide services shared by the test suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresCluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster per test session, on loopback."""
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
