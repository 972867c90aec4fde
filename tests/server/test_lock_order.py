"""PostgreSQL lock order: observation creation (experiment row, then the run's row) and a rung
checkpoint (the run's row, then a rung value referencing the experiment) must not deadlock.

The test holds the experiment lock the way observation creation does and, in another
transaction, does what a rung checkpoint does; with a lock that blocks the rung insert's
key-share lock on the experiment row, that transaction waits (here: fails on lock_timeout),
which with the observation then waiting for the run's row is a deadlock.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.models import TrainingRun
from suggestion_server.storage.queries import experiment_row_for_client
from suggestion_server.storage.training_runs import (
    lock_stopping_decisions,
    record_rung_value,
    run_for_client,
)
from tests.server.conftest import Api
from tests.server.test_training_runs import Runs, asha
from tests.support.server import RunningServer

pytestmark = pytest.mark.postgres


def a_run(api: Api) -> tuple[int, int]:
    """(experiment id, run id) of a fresh experiment with one training run."""
    runs = Runs(api, asha())
    return int(runs.eid), int(runs.run()["id"])


def test_a_rung_checkpoint_is_not_blocked_by_the_experiment_lock(
    server: RunningServer, api: Api
) -> None:
    if server.db_url is None or not server.db_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite runs one write transaction at a time")
    eid, run_id = a_run(api)
    store = Store(make_engine(server.db_url, pool_size=2))
    try:
        with store.read() as session:
            run = session.get(TrainingRun, run_id)
            assert run is not None
            client_id = run.client_id
        outcome: dict[str, Any] = {}

        def rung_checkpoint() -> None:
            try:
                with store.write() as session:
                    session.execute(text("SET LOCAL lock_timeout = '3s'"))
                    run = run_for_client(session, client_id, run_id, experiment_id=eid, lock=True)
                    lock_stopping_decisions(session, eid)
                    record_rung_value(session, eid, 1, run.id, 0.5)
                    session.flush()
                outcome["done"] = True
            except Exception as exc:  # the lock timeout, reported to the main thread
                outcome["error"] = exc

        with store.write() as session:
            experiment_row_for_client(session, client_id, eid, lock=True)  # as observations do
            other = threading.Thread(target=rung_checkpoint)
            other.start()
            other.join(timeout=30)
            assert not other.is_alive()
        assert outcome == {"done": True}, outcome
    finally:
        store.engine.dispose()
