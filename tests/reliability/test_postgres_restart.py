"""PostgreSQL restarts under load: the server recovers by itself, nothing acknowledged is lost.

The server is not restarted: its pooled connections die with the database, and it must notice
(idle pings and pool invalidation in suggestion_server/storage/database.py) instead of failing
every request that draws one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.conftest import TOKEN, LogAudit
from tests.reliability.load_sim import (
    LoadConfig,
    LoadSimulator,
    create_discrete_experiment,
    reconcile,
)
from tests.support.ports import wait_until
from tests.support.postgres import PostgresCluster
from tests.support.server import RunningServer


@pytest.fixture()
def pg_server(pg_cluster: PostgresCluster, log_audit: LogAudit) -> Iterator[RunningServer]:
    with RunningServer.start(db_url=pg_cluster.create_database(), token=TOKEN) as server:
        log_audit.watch(server.log_path)
        yield server


def test_database_restart_under_load(pg_server: RunningServer, pg_cluster: PostgresCluster) -> None:
    eid = create_discrete_experiment(pg_server.url, TOKEN)
    sim = LoadSimulator(
        pg_server.url,
        TOKEN,
        eid,
        LoadConfig(workers=20, duration_s=600, attempts=40, request_timeout_s=20, seed=3),
    )
    load = threading.Thread(target=sim.run, daemon=True)
    load.start()
    try:
        wait_until(lambda: sim.result.observations >= 20, timeout_s=120, what="load under way")
        pg_cluster.restart()
        restarted_at = sim.result.observations
        wait_until(
            lambda: sim.result.observations >= restarted_at + 40,
            timeout_s=120,
            what="writes succeeding again after the database restart",
        )
        errors_after_recovery = sum(sim.result.errors.values())
        # Every pooled connection is good again: a run of requests after recovery all succeed.
        with httpx.Client(auth=(TOKEN, ""), timeout=30) as client:
            statuses = [
                client.get(f"{pg_server.url}/v1/experiments/{eid}").status_code for _ in range(60)
            ]
        assert statuses == [200] * 60, statuses
    finally:
        sim.stop_requested.set()
        load.join(timeout=120)
    assert not load.is_alive()
    assert pg_server._proc is not None and pg_server._proc.poll() is None  # never restarted
    check = reconcile(pg_server.url, TOKEN, eid, sim.result)
    print(f"\nerrors during the restart: {dict(sim.result.errors)}; after: {errors_after_recovery}")
    assert check.missing == [] and check.changed == [] and check.duplicated == [], check
    assert check.open_duplicates == [], check
    # Requests arriving during the restart saw errors and were retried; none after recovery.
    assert sum(sim.result.errors.values()) == errors_after_recovery


def test_database_down_is_a_retryable_503(
    pg_server: RunningServer, pg_cluster: PostgresCluster
) -> None:
    """While PostgreSQL is down every request gets 503 with Retry-After (the agent and the
    official client retry 5xx), never a 500 or a hang; once it is back, requests succeed."""
    eid = create_discrete_experiment(pg_server.url, TOKEN)
    base = f"{pg_server.url}/v1/experiments/{eid}"
    with httpx.Client(auth=(TOKEN, ""), timeout=30) as client:
        sid = client.post(f"{base}/suggestions", json={}).json()["id"]
        requests = [
            ("GET", base, None),
            ("POST", f"{base}/suggestions", {}),
            ("PUT", f"{base}/suggestions/{sid}", {"metadata": {"lease": 1}}),
            ("POST", f"{base}/observations", {"suggestion": sid, "value": 1.0}),
        ]
        pg_cluster.pause()
        try:
            for method, url, body in requests:
                response = client.request(method, url, json=body)
                assert response.status_code == 503, (method, url, response.text)
                assert "database is unavailable" in response.json()["message"]
                assert response.headers["retry-after"] == "1"
        finally:
            pg_cluster.resume()
        wait_until(
            lambda: client.get(base).status_code == 200,
            timeout_s=60,
            what="the server answering again after PostgreSQL is back",
        )
        statuses = [client.request(m, u, json=b).status_code for m, u, b in requests]
        assert statuses == [200] * len(requests), statuses
    assert "Traceback" not in pg_server.log_text()
