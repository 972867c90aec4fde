"""Several server processes on one PostgreSQL hammer one experiment while its suggestion pool is
being refilled: no assignment is handed out twice among open suggestions, no acknowledged
observation is lost or doubled, and queued suggestions are served before pooled ones.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from suggestion_server.config import normalize_db_url
from suggestion_server.storage.models import Suggestion
from tests.reliability.conftest import TOKEN, LogAudit
from tests.reliability.load_sim import (
    LoadConfig,
    LoadResult,
    LoadSimulator,
    create_discrete_experiment,
    reconcile,
)
from tests.support.ports import wait_until
from tests.support.postgres import PostgresCluster
from tests.support.server import RunningServer

WORKERS_PER_SERVER = 48
# Distinct points of the discrete space, queued while the pool is in use.
QUEUED = [{"a": 20, "b": 20, "c": c, "d": "z"} for c in range(1, 6)]


@pytest.fixture
def two_servers(pg_cluster: PostgresCluster, log_audit: LogAudit) -> Iterator[list[RunningServer]]:
    """Two server processes (one of them with two workers) on one fresh database."""
    db_url = pg_cluster.create_database()
    first = RunningServer.start(db_url=db_url, token=TOKEN)
    try:
        second = RunningServer.start(db_url=db_url, token=TOKEN, workers=2)
        try:
            for server in (first, second):
                log_audit.watch(server.log_path)
            yield [first, second]
        finally:
            second.stop()
    finally:
        first.stop()


def _max_suggestion_id(db_url: str, experiment_id: str) -> int:
    engine = create_engine(normalize_db_url(db_url))
    try:
        with engine.connect() as connection:
            query = select(func.max(Suggestion.id)).where(
                Suggestion.experiment_id == int(experiment_id)
            )
            return int(connection.execute(query).scalar() or 0)
    finally:
        engine.dispose()


def _merged(results: list[LoadResult]) -> LoadResult:
    merged = LoadResult()
    for result in results:
        merged.ledger.update(result.ledger)
        merged.intervals.extend(result.intervals)
        merged.errors.update(result.errors)
        merged.create_ms.extend(result.create_ms)
        merged.observe_ms.extend(result.observe_ms)
    return merged


def test_servers_sharing_a_pool_keep_every_guarantee(two_servers: list[RunningServer]) -> None:
    url = two_servers[0].url
    eid = create_discrete_experiment(url, TOKEN, name="pool-hammer")
    config = LoadConfig(workers=WORKERS_PER_SERVER, duration_s=300, seed=3)
    simulators = [LoadSimulator(server.url, TOKEN, eid, config) for server in two_servers]
    results: list[LoadResult] = []
    threads = [
        threading.Thread(target=lambda s=sim: results.append(s.run()), daemon=True)
        for sim in simulators
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: any("pool refilled" in s.log_text() for s in two_servers),
            timeout_s=120,
            what="a pool refill under load",
        )
        with httpx.Client(auth=(TOKEN, ""), timeout=60) as client:
            for point in QUEUED:
                response = client.post(
                    f"{url}/v1/experiments/{eid}/queued_suggestions", json={"assignments": point}
                )
                assert response.status_code == 200, response.text
            after_queueing = _max_suggestion_id(two_servers[0].db_url, eid)

            def queue_empty() -> bool:
                page = client.get(f"{url}/v1/experiments/{eid}/queued_suggestions").json()
                return bool(page["count"] == 0)

            wait_until(queue_empty, timeout_s=120, what="the queued suggestions served")
        served = sum(sim.result.observations for sim in simulators)
        wait_until(
            lambda: sum(sim.result.observations for sim in simulators) >= served + 200,
            timeout_s=180,
            what="more load after the queue",
        )
    finally:
        for sim in simulators:
            sim.stop_requested.set()
        for thread in threads:
            thread.join(timeout=240)
    result = _merged(results)
    check = reconcile(url, TOKEN, eid, result)

    assert not result.errors, result.errors
    assert check.missing == [] and check.changed == [] and check.duplicated == [], check
    assert check.on_server == check.acknowledged
    # Queued assignments are the user's choice (they may equal an open point, as without a
    # pool); every other pair of simultaneously open suggestions must differ.
    queued_points = {tuple(sorted(p.items())) for p in QUEUED}
    by_id = {i.suggestion_id: i.assignment for i in result.intervals}

    def involves_queued(pair: tuple[str, str]) -> bool:
        if pair[0] == "open-at-end":
            return pair[1] in {str(p) for p in queued_points}
        return by_id.get(pair[0]) in queued_points

    clashes = [pair for pair in check.open_duplicates if not involves_queued(pair)]
    assert clashes == [], clashes

    # Every queued point was handed out once by the queue, before the pool could serve many
    # more: only requests already past their queue check (one per worker) may have taken pool
    # entries first. (Once observed, the engine may choose such a point again on its own.)
    from_queue = {
        sid
        for server in two_servers
        for sid in re.findall(
            rf"suggestion created experiment={eid} suggestion=(\d+) source=queued",
            server.log_text(),
        )
    }
    handed = [i for i in result.intervals if str(i.suggestion_id) in from_queue]
    assert sorted(i.assignment for i in handed) == sorted(queued_points)
    latest_allowed = after_queueing + len(QUEUED) + 2 * WORKERS_PER_SERVER
    assert all(int(i.suggestion_id) <= latest_allowed for i in handed), handed

    # Both servers handed out pooled entries: the pool lives in the database, not a process.
    for server in two_servers:
        log = server.log_text()
        assert any(f"source={source}" in log for source in ("pool", "batch", "padding"))
