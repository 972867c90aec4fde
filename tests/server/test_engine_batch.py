"""A saturated engine run fills the pool with the engine's batch picks, not random padding, on the
server's real rows (SQLite and PostgreSQL). The runner only reads: what it returns is exactly
what the pool would store."""

from __future__ import annotations

import json
from collections import Counter

from suggestion_server.optimizer.padding import point_key
from suggestion_server.optimizer.suggester import StudySuggester
from suggestion_server.pool.entries import BATCH_RANK, ENGINE_RANK, PADDING_RANK
from suggestion_server.pool.optimizer_runs import OptimizerRunner
from suggestion_server.storage.database import Store, make_engine
from tests.server.conftest import Api
from tests.support.server import RunningServer

SPEC = {
    "name": "engine batch",
    "parameters": [
        {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}},
        {"name": "y", "type": "int", "bounds": {"min": 1, "max": 50}},
    ],
    "metrics": [{"name": "loss", "objective": "minimize"}],
}
OPEN = 20  # above the pool's minimum fleet


def _loss(assignments: dict[str, float]) -> float:
    return (assignments["x"] - 0.3) ** 2 + ((assignments["y"] - 20) / 50) ** 2


def test_a_saturated_run_fills_with_batch_picks(server: RunningServer, api: Api) -> None:
    eid = str(api.ok("POST", "/v1/experiments", json=SPEC)["id"])
    path = f"/v1/experiments/{eid}"
    for _ in range(12):
        created = api.ok("POST", f"{path}/suggestions", json={})
        body = {"suggestion": created["id"], "value": _loss(created["assignments"])}
        api.ok("POST", f"{path}/observations", json=body)
    open_points = {
        point_key(api.ok("POST", f"{path}/suggestions", json={})["assignments"])
        for _ in range(OPEN)
    }
    store = Store(make_engine(server.db_url))
    try:
        runner = OptimizerRunner(store, StudySuggester(seed=2))
        # The first run times the engine; with that known, 100 waiting requests saturate it.
        runner.compute(int(eid), waiting=100, cycle_s=0.5, requested=False)
        run = runner.compute(int(eid), waiting=100, cycle_s=0.5, requested=False)
    finally:
        store.dispose()
    ranks = Counter(entry.rank for entry in run.entries)
    assert run.pool_mode and ranks[ENGINE_RANK] >= 1
    assert ranks[BATCH_RANK] > 50 and ranks[PADDING_RANK] == 0, ranks
    points = [point_key(json.loads(entry.assignments_json)) for entry in run.entries]
    assert len(set(points)) == len(points)
    assert not set(points) & open_points
