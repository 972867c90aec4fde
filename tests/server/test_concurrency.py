"""32 concurrent clients creating suggestions for one experiment over a 10x10 integer grid:
no duplicated assignments among open suggestions, no lost rows, no "database is locked"."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.server.conftest import INT_GRID_SPEC, Api
from tests.support.ports import wait_until
from tests.support.server import RunningServer

THREADS = 32
PER_THREAD = 2


def _create_suggestions(server: RunningServer, eid: str, worker: int) -> list[dict[str, Any]]:
    session = requests.Session()
    session.auth = (server.token, "")
    created = []
    for n in range(PER_THREAD):
        response = session.post(
            f"{server.url}/v1/experiments/{eid}/suggestions",
            json={"metadata": {"instance_id": f"i-{worker}", "n": n}},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        created.append(response.json())
    return created


def test_parallel_suggestions_are_distinct_and_all_stored(server: RunningServer, api: Api) -> None:
    eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(INT_GRID_SPEC))["id"]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda w: _create_suggestions(server, eid, w), range(THREADS)))
    created = [s for batch in results for s in batch]
    assert len(created) == THREADS * PER_THREAD
    assert len({s["id"] for s in created}) == len(created)
    points = [(s["assignments"]["x"], s["assignments"]["y"]) for s in created]
    assert len(set(points)) == len(points), "duplicated assignments among open suggestions"
    listed = api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"state": "open"})
    assert listed["count"] == len(created)
    assert {s["id"] for s in listed["data"]} == {s["id"] for s in created}
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["open_suggestion_count"] == len(
        created
    )
    assert "database is locked" not in server.log_text()


def test_parallel_observations_and_metadata_updates(server: RunningServer, api: Api) -> None:
    eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(INT_GRID_SPEC))["id"]
    suggestions = [
        api.ok(
            "POST",
            f"/v1/experiments/{eid}/suggestions",
            json={"assignments": {"x": i % 10, "y": i // 10}},
        )["id"]
        for i in range(THREADS)
    ]

    def report(index: int) -> str:
        session = requests.Session()
        session.auth = (server.token, "")
        sid = suggestions[index]
        for lease in range(3):
            response = session.put(
                f"{server.url}/v1/experiments/{eid}/suggestions/{sid}",
                json={"metadata": {"instance_id": f"i-{index}", "lease_expires_at": lease}},
                timeout=60,
            )
            assert response.status_code == 200, response.text
        response = session.post(
            f"{server.url}/v1/experiments/{eid}/observations",
            json={"suggestion": sid, "value": float(index)},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        observation_ids = list(pool.map(report, range(THREADS)))
    assert len(set(observation_ids)) == THREADS
    progress = api.ok("GET", f"/v1/experiments/{eid}")["progress"]
    assert progress["observation_count"] == THREADS
    assert progress["open_suggestion_count"] == 0
    assert progress["best_observation"]["values"][0]["value"] == float(THREADS - 1)
    leases = api.ok("GET", f"/v1/experiments/{eid}/suggestions")["data"]
    assert all(s["metadata"]["lease_expires_at"] == 2 for s in leases)
    assert "database is locked" not in server.log_text()


def test_two_server_processes_share_one_database(server: RunningServer, api: Api) -> None:
    """A second process on the same database (bootstrap token registered again, idempotently):
    the row lock in the database, not an in-process lock, keeps suggestions distinct."""
    second = RunningServer.start(db_url=server.db_url, token=server.token)
    try:
        eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(INT_GRID_SPEC))["id"]
        targets = [server, second] * (THREADS // 2)
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            results = list(
                pool.map(lambda w: _create_suggestions(targets[w], eid, w), range(THREADS))
            )
        created = [s for batch in results for s in batch]
        points = [(s["assignments"]["x"], s["assignments"]["y"]) for s in created]
        assert len(set(points)) == len(points) == THREADS * PER_THREAD
        assert api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"limit": 0})[
            "count"
        ] == len(created)
        assert "database is locked" not in second.log_text()
    finally:
        second.stop_process()


def test_workers_option_keeps_suggestions_distinct_and_rows_complete(
    server: RunningServer, api: Api
) -> None:
    """``--workers 2`` on the same database: 32 clients create suggestions and then report
    observations and lease renewals through both processes; no open duplicates, nothing lost."""
    multi = RunningServer.start(db_url=server.db_url, token=server.token, workers=2)
    try:
        wait_until(
            lambda: multi.log_text().count("Application startup complete") >= 2,
            timeout_s=60,
            what="both worker processes started",
        )
        eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(INT_GRID_SPEC))["id"]
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            results = list(pool.map(lambda w: _create_suggestions(multi, eid, w), range(THREADS)))
        created = [s for batch in results for s in batch]
        points = [(s["assignments"]["x"], s["assignments"]["y"]) for s in created]
        assert len(set(points)) == len(points) == THREADS * PER_THREAD
        listed = api.ok("GET", f"/v1/experiments/{eid}/suggestions", params={"state": "open"})
        assert {s["id"] for s in listed["data"]} == {s["id"] for s in created}

        def report(suggestion: dict[str, Any]) -> str:
            session = requests.Session()
            session.auth = (multi.token, "")
            base = f"{multi.url}/v1/experiments/{eid}"
            renewed = session.put(
                f"{base}/suggestions/{suggestion['id']}",
                json={"metadata": {"lease_expires_at": 1}},
                timeout=60,
            )
            assert renewed.status_code == 200, renewed.text
            observed = session.post(
                f"{base}/observations",
                json={"suggestion": suggestion["id"], "value": float(suggestion["id"])},
                timeout=60,
            )
            assert observed.status_code == 200, observed.text
            return str(observed.json()["id"])

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            observation_ids = list(pool.map(report, created))
        assert len(set(observation_ids)) == len(created)
        progress = api.ok("GET", f"/v1/experiments/{eid}")["progress"]
        assert progress["observation_count"] == len(created)
        assert progress["open_suggestion_count"] == 0
        stored = api.ok("GET", f"/v1/experiments/{eid}/suggestions")["data"]
        assert all(s["metadata"]["lease_expires_at"] == 1 for s in stored)
        # The next suggestions come from studies that both processes extend incrementally.
        session = requests.Session()
        session.auth = (multi.token, "")
        after = [
            session.post(
                f"{multi.url}/v1/experiments/{eid}/suggestions", json={}, timeout=60
            ).json()["assignments"]
            for _ in range(4)
        ]
        assert len({(a["x"], a["y"]) for a in after}) == len(after)
        assert "database is locked" not in multi.log_text()
    finally:
        multi.stop_process()
