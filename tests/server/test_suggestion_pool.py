"""The suggestion pool seen through the API, on SQLite and PostgreSQL.

Pool entries are written straight into the server's database (what a refill stores), so each
test knows exactly what the pool holds; the server under test is the real subprocess.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, insert, select

from suggestion_server.config import normalize_db_url
from suggestion_server.storage.models import PooledSuggestion
from tests.server.conftest import INT_GRID_SPEC, Api
from tests.support.server import RunningServer

OFFLINE_SPEC: dict[str, Any] = {**copy.deepcopy(INT_GRID_SPEC), "name": "pool"}
OFFLINE_SPEC.pop("parallel_bandwidth")


@pytest.fixture
def database(server: RunningServer) -> Iterator[Engine]:
    """The server's own database, opened by the test."""
    engine = create_engine(normalize_db_url(server.db_url))
    try:
        yield engine
    finally:
        engine.dispose()


def pool_entry(
    experiment_id: str,
    assignments: dict[str, Any],
    *,
    version: int = 0,
    mark: int = 0,
    stale_after: int = 8,
    rank: int = 0,
) -> dict[str, Any]:
    """A row of the pool table, as a refill stores it."""
    return {
        "id": uuid.uuid4().int % 2**62 + 1,
        "experiment_id": int(experiment_id),
        "assignments_json": json.dumps(assignments),
        "rank": rank,
        "version": version,
        "observation_mark": mark,
        "stale_after": stale_after,
        "created": 0,
    }


def add_to_pool(database: Engine, *rows: dict[str, Any]) -> None:
    with database.begin() as connection:
        connection.execute(insert(PooledSuggestion), list(rows))


def pooled_count(database: Engine, experiment_id: str) -> int:
    with database.connect() as connection:
        query = select(func.count()).where(PooledSuggestion.experiment_id == int(experiment_id))
        return int(connection.execute(query).scalar() or 0)


def source_of(server: RunningServer, experiment_id: str, suggestion_id: str) -> str:
    """Where a suggestion came from, as the server logged it (engine, pool, padding, ...)."""
    line = re.search(
        rf"suggestion created experiment={experiment_id} suggestion={suggestion_id} source=(\w+)",
        server.log_text(),
    )
    assert line is not None, f"no log line for suggestion {suggestion_id}"
    return line.group(1)


def new_experiment(api: Api) -> str:
    return str(api.ok("POST", "/v1/experiments", json=copy.deepcopy(OFFLINE_SPEC))["id"])


def test_pooled_suggestion_is_invisible_until_handed_out_then_has_the_request_metadata(
    server: RunningServer, api: Api, database: Engine
) -> None:
    eid = new_experiment(api)
    add_to_pool(database, pool_entry(eid, {"x": 7, "y": 3}))
    listed = api.ok("GET", f"/v1/experiments/{eid}/suggestions")
    assert listed["count"] == 0 and listed["data"] == []
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["open_suggestion_count"] == 0

    created = api.ok(
        "POST", f"/v1/experiments/{eid}/suggestions", json={"metadata": {"instance_id": "i-1"}}
    )
    assert created["assignments"] == {"x": 7, "y": 3}
    assert created["metadata"] == {"instance_id": "i-1"}
    assert created["state"] == "open"
    fetched = api.ok("GET", f"/v1/experiments/{eid}/suggestions/{created['id']}")
    assert fetched["created"] == created["created"] > 0
    assert pooled_count(database, eid) == 0
    assert api.ok("GET", f"/v1/experiments/{eid}")["progress"]["open_suggestion_count"] == 1


def test_engine_entries_are_served_before_padding(
    server: RunningServer, api: Api, database: Engine
) -> None:
    eid = new_experiment(api)
    add_to_pool(
        database,
        pool_entry(eid, {"x": 1, "y": 1}, rank=2),
        pool_entry(eid, {"x": 2, "y": 2}, rank=0),
    )
    # Only the first create is checked: after a take, a refill may empty a pool that low
    # demand does not justify (which is what it should do).
    first = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    assert first["assignments"] == {"x": 2, "y": 2}


def test_queued_suggestions_come_before_the_pool(
    server: RunningServer, api: Api, database: Engine
) -> None:
    eid = new_experiment(api)
    add_to_pool(database, pool_entry(eid, {"x": 5, "y": 5}))
    api.ok(
        "POST", f"/v1/experiments/{eid}/queued_suggestions", json={"assignments": {"x": 9, "y": 9}}
    )
    first = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    second = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    assert first["assignments"] == {"x": 9, "y": 9}
    assert second["assignments"] == {"x": 5, "y": 5}


def test_a_pool_made_stale_by_observations_is_not_served(
    server: RunningServer, api: Api, database: Engine
) -> None:
    eid = new_experiment(api)
    add_to_pool(database, pool_entry(eid, {"x": 4, "y": 4}, mark=0, stale_after=2))
    for point in ({"x": 0, "y": 1}, {"x": 0, "y": 2}):
        api.ok(
            "POST", f"/v1/experiments/{eid}/observations", json={"assignments": point, "value": 1.0}
        )
    created = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    # The engine made it (it may pick the same point by chance: the source says who served it).
    assert source_of(server, eid, created["id"]) == "engine"
    assert pooled_count(database, eid) == 0  # the stale entry was dropped


def test_only_the_experiments_own_observations_age_its_pool(
    server: RunningServer, api: Api, database: Engine
) -> None:
    other, eid = new_experiment(api), new_experiment(api)
    add_to_pool(database, pool_entry(eid, {"x": 4, "y": 4}, mark=0, stale_after=2))
    for experiment, point in (
        (other, {"x": 0, "y": 1}),
        (other, {"x": 0, "y": 2}),
        (eid, {"x": 0, "y": 3}),
    ):
        api.ok(
            "POST",
            f"/v1/experiments/{experiment}/observations",
            json={"assignments": point, "value": 1.0},
        )
    created = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    # One observation of its own is newer than the entry: below stale_after, still fresh.
    assert source_of(server, eid, created["id"]) == "pool"
    assert created["assignments"] == {"x": 4, "y": 4}
    assert pooled_count(database, eid) == 0


def test_a_pool_of_an_older_version_is_not_served(
    server: RunningServer, api: Api, database: Engine
) -> None:
    eid = new_experiment(api)
    observation = api.ok(
        "POST",
        f"/v1/experiments/{eid}/observations",
        json={"assignments": {"x": 0, "y": 0}, "value": 1.0},
    )
    add_to_pool(database, pool_entry(eid, {"x": 6, "y": 6}, mark=int(observation["id"])))
    # Editing an observation changes what the engine knows: every pooled entry is stale.
    api.ok("PUT", f"/v1/experiments/{eid}/observations/{observation['id']}", json={"value": 2.0})
    created = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    assert source_of(server, eid, created["id"]) == "engine"
    assert pooled_count(database, eid) == 0


def test_low_demand_leaves_the_pool_empty_and_every_suggestion_to_the_engine(
    server: RunningServer, api: Api, database: Engine
) -> None:
    """A small fleet (4 workers, each create -> observe) is below the pool's threshold: every
    suggestion comes from an engine run at request time, as without a pool."""
    eid = new_experiment(api)
    log_start = len(server.log_text())

    def worker(n: int) -> list[str]:
        own = Api(server)  # a session per thread
        ids = []
        for _ in range(6):
            suggestion = own.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
            value = float(suggestion["assignments"]["x"] + n)
            body = {"suggestion": suggestion["id"], "value": value}
            own.ok("POST", f"/v1/experiments/{eid}/observations", json=body)
            ids.append(str(suggestion["id"]))
        return ids

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = [sid for ids in pool.map(worker, range(4)) for sid in ids]
    assert len(set(created)) == 24
    assert pooled_count(database, eid) == 0
    log = server.log_text()[log_start:]
    sources = [
        line.split("source=")[1].split()[0]
        for line in log.splitlines()
        if f"suggestion created experiment={eid} " in line
    ]
    assert sources == ["engine"] * 24
    assert f"pool refilled experiment={eid} " not in log


def test_deleted_experiment_does_not_serve_its_pool(
    server: RunningServer, api: Api, database: Engine
) -> None:
    eid = new_experiment(api)
    add_to_pool(database, pool_entry(eid, {"x": 8, "y": 8}))
    api.ok("DELETE", f"/v1/experiments/{eid}")
    response = api.post(f"/v1/experiments/{eid}/suggestions", json={})
    assert response.status_code == 400, response.text
    assert pooled_count(database, eid) == 0  # deleting the experiment emptied its pool
