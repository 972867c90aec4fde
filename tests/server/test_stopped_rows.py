"""The optimizer's rows call a run stopped only when the cross-run rule stopped it (issue 21):
a run that reached ``max_checkpoints`` or converged has its final value."""

from __future__ import annotations

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.queries import SqlRowSource
from tests.server.conftest import Api
from tests.server.test_training_runs import LOOK_BACK_2, Runs
from tests.support.server import RunningServer


def test_only_rule_stops_reach_the_optimizer_as_stopped(server: RunningServer, api: Api) -> None:
    monitor = {
        "max_checkpoints": 2,
        "early_stopping_criteria": [
            {**LOOK_BACK_2, "lookback_checkpoints": 1, "min_checkpoints": 1}
        ],
        "early_stopping": {"rule": "asha"},
    }
    runs = Runs(api, monitor)
    leader, loser, converged, full = (runs.run() for _ in range(4))
    assert not runs.checkpoint(leader, 0.9, step=1)["should_stop"]
    assert runs.checkpoint(loser, 0.1, step=1)["stopping_reasons"]["asha"]
    runs.checkpoint(converged, 0.95, step=1)
    assert runs.checkpoint(converged, 0.95, step=3)["should_stop"]
    assert runs.fetch(converged)["stopping_reason"] == "convergence"
    runs.checkpoint(full, 0.97, step=1)
    assert runs.checkpoint(full, 0.98, step=3)["should_stop"]
    assert runs.fetch(full)["stopping_reason"] == "max_checkpoints"
    observations = f"/v1/experiments/{runs.eid}/observations"
    for run, value in ((leader, 0.9), (loser, 0.1), (converged, 0.95), (full, 0.98)):
        body = {"suggestion": run["suggestion"], "values": [{"name": "acc", "value": value}]}
        api.ok("POST", observations, json=body)
    assert _stopped_steps(server, int(runs.eid)) == {
        leader["suggestion"]: None,
        loser["suggestion"]: 1,
        converged["suggestion"]: None,
        full["suggestion"]: None,
    }


def _stopped_steps(server: RunningServer, experiment_id: int) -> dict[str, int | None]:
    """Suggestion id -> ``stopped_at_step`` of the rows the optimizer reads."""
    store = Store(make_engine(server.db_url, pool_size=1))
    with store.read() as session:
        rows = SqlRowSource(session, experiment_id, {"acc": "acc"}).observations_after(0)
        stopped = {str(row.suggestion_id): row.stopped_at_step for row in rows}
    store.dispose()
    return stopped
