"""A short load run (100 workers over real HTTP) on SQLite and PostgreSQL.

Nothing acknowledged is lost, no suggestion gets two observations, and no assignment of a discrete
space is handed out twice among open suggestions. The full 1,000-worker run is
benchmarks/bench_load.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.conftest import TOKEN, LogAudit
from tests.reliability.load_sim import (
    LoadConfig,
    LoadSimulator,
    create_discrete_experiment,
    reconcile,
)
from tests.support.postgres import PostgresCluster
from tests.support.server import RunningServer

WORKERS = 100
DURATION_S = 10.0


@pytest.fixture(params=["sqlite", "postgresql"])
def any_server(request: pytest.FixtureRequest, log_audit: LogAudit) -> Iterator[RunningServer]:
    db_url = None
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        db_url = cluster.create_database()
    with RunningServer.start(db_url=db_url, token=TOKEN) as server:
        log_audit.watch(server.log_path)
        yield server


def test_hundred_workers_lose_nothing_and_never_share_an_open_point(
    any_server: RunningServer,
) -> None:
    eid = create_discrete_experiment(any_server.url, TOKEN)
    config = LoadConfig(workers=WORKERS, duration_s=DURATION_S, seed=1)
    result = LoadSimulator(any_server.url, TOKEN, eid, config).run()
    check = reconcile(any_server.url, TOKEN, eid, result)
    print(
        f"\n{any_server.db_url.split(':')[0]}: {result.observations} observations in "
        f"{result.wall_s:.1f} s, errors {dict(result.errors)}"
    )
    # Enough work happened for the invariants to mean something: every worker finished a loop.
    assert result.observations >= WORKERS, result.errors
    assert not result.errors, result.errors  # a healthy server answers every request
    assert check.missing == [] and check.changed == [], check
    assert check.duplicated == [], check
    assert check.open_duplicates == [], check
    assert check.on_server == check.acknowledged
