"""Training runs and early stopping (docs/api.md, "Training runs and early stopping") against a
running server, on SQLite and PostgreSQL: the official client's Core training-monitor flow,
retries after a lost answer, every refused input, ASHA / median / convergence decisions on
hand-built curves, and two server processes deciding concurrently on one database."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import sigopt
from sqlalchemy import select

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.models import Checkpoint, RungValue, TrainingRun
from suggestion_server.storage.queries import SqlRowSource
from tests.server.conftest import Api, expect_api_error
from tests.support.fault_proxy import FaultProxy
from tests.support.server import RunningServer

LOOK_BACK_2 = {
    "type": "convergence",
    "name": "Look Back 2 Steps",
    "metric": "acc",
    "lookback_checkpoints": 2,
    "min_checkpoints": 3,
}


def spec(training_monitor: dict[str, Any] | None = None, objective: str = "maximize") -> Any:
    body: dict[str, Any] = {
        "name": "training runs",
        "parameters": [{"name": "lr", "type": "double", "bounds": {"min": 0.0, "max": 1.0}}],
        "metrics": [
            {"name": "acc", "objective": objective},
            {"name": "loss", "objective": "minimize", "strategy": "store"},
        ],
        "observation_budget": 50,
    }
    if training_monitor is not None:
        body["training_monitor"] = training_monitor
    return body


class Runs:
    """Raw HTTP helpers for one experiment's suggestions, runs and checkpoints."""

    def __init__(self, api: Api, training_monitor: dict[str, Any] | None = None, **kw: Any) -> None:
        self.api = api
        self.experiment = api.ok("POST", "/v1/experiments", json=spec(training_monitor, **kw))
        self.eid = self.experiment["id"]

    def suggestion(self) -> str:
        return str(self.api.ok("POST", f"/v1/experiments/{self.eid}/suggestions", json={})["id"])

    def create(self, suggestion: str | None = None, **body: Any) -> requests.Response:
        payload = {"suggestion": suggestion or self.suggestion(), **body}
        return self.api.post(f"/v1/experiments/{self.eid}/training_runs", json=payload)

    def run(self) -> dict[str, Any]:
        response = self.create()
        assert response.status_code == 200, response.text
        return dict(response.json())

    def post(self, run: dict[str, Any], acc: float | None = None, **body: Any) -> requests.Response:
        if acc is not None:
            body["values"] = [{"name": "acc", "value": acc}]
        path = f"/v1/experiments/{self.eid}/training_runs/{run['id']}/checkpoints"
        return self.api.post(path, json=body)

    def checkpoint(self, run: dict[str, Any], acc: float, **body: Any) -> dict[str, Any]:
        response = self.post(run, acc, **body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def fetch(self, run: dict[str, Any]) -> dict[str, Any]:
        return dict(self.api.ok("GET", f"/v1/experiments/{self.eid}/training_runs/{run['id']}"))


def asha(**options: Any) -> dict[str, Any]:
    return {"max_checkpoints": 50, "early_stopping": {"rule": "asha", **options}}


def test_official_client_core_training_run_flow(conn: sigopt.Connection) -> None:
    monitor = {"max_checkpoints": 10, "early_stopping_criteria": [LOOK_BACK_2]}
    experiment = conn.experiments().create(**spec(monitor))
    assert experiment.training_monitor.max_checkpoints == 10
    criterion = experiment.training_monitor.early_stopping_criteria[0]
    assert criterion.name == "Look Back 2 Steps" and criterion.lookback_checkpoints == 2
    assert conn.experiments(experiment.id).fetch().training_monitor.to_json()["early_stopping"] == {
        "rule": "none",
        "metric": "acc",
        "min_step": 1,
        "reduction_factor": 3,
        "grace_step": 1,
        "min_runs": 5,
    }
    runs = conn.experiments(experiment.id).training_runs
    suggestion = conn.experiments(experiment.id).suggestions().create()
    run = runs().create(suggestion=suggestion.id)
    assert run.suggestion == suggestion.id and run.observation is None and not run.finished
    assert run.checkpoint_count == 0 and run.best_checkpoint is None and run.state == "active"
    assert run.assignments.to_json() == suggestion.assignments.to_json()

    answers = [
        runs(run.id).checkpoints().create(values=[{"name": "acc", "value": value}])
        for value in (0.50, 0.60, 0.66, 0.66, 0.66)
    ]
    assert [a.should_stop for a in answers] == [False, False, False, False, True]
    assert answers[-1].stopping_reasons.to_json() == {"Look Back 2 Steps": True}
    assert answers[0].training_run == run.id and answers[0].values[0].value == 0.5

    fetched = runs(run.id).fetch()
    assert fetched.checkpoint_count == 5 and fetched.best_checkpoint == answers[2].id
    assert fetched.to_json()["stopped_at_step"] == 5
    assert fetched.to_json()["stopping_reason"] == "convergence"
    assert [r.id for r in runs().fetch().iterate_pages()] == [run.id]
    listed = [c.id for c in runs(run.id).checkpoints().fetch().iterate_pages()]
    assert listed == [a.id for a in reversed(answers)]  # newest first
    assert [c.id for c in conn.training_runs(run.id).checkpoints().fetch().iterate_pages()] == (
        listed
    )
    assert conn.training_runs(run.id).fetch().id == run.id

    conn.experiments(experiment.id).observations().create(
        suggestion=suggestion.id, values=[{"name": "acc", "value": 0.66}]
    )
    closed = runs(run.id).fetch()
    assert closed.finished and closed.observation is not None and closed.state == "completed"
    assert closed.values["acc"].value == 0.66 and closed.completed is not None
    expect_api_error(
        403, lambda: runs(run.id).checkpoints().create(values=[{"name": "acc", "value": 0.7}])
    )


def test_a_retry_after_a_lost_answer_gets_the_same_checkpoint_and_decision(
    server: RunningServer, api: Api
) -> None:
    runs = Runs(api, asha(min_step=1))
    leader = runs.run()
    runs.checkpoint(leader, 0.9, step=1)
    run = runs.run()
    again = runs.create(run["suggestion"])  # the run of a suggestion is created once
    assert again.status_code == 200 and again.json()["id"] == run["id"]

    with FaultProxy(server.url) as proxy:
        proxy.add("reset_after_forward", method="POST", path="/checkpoints")
        session = requests.Session()
        session.auth = (server.token, "")
        path = f"{proxy.url}/v1/experiments/{runs.eid}/training_runs/{run['id']}/checkpoints"
        body = {"values": [{"name": "acc", "value": 0.1}], "step": 1}
        with pytest.raises(requests.ConnectionError):
            session.post(path, json=body, timeout=30)
        retried = session.post(path, json=body, timeout=30)
    assert retried.status_code == 200, retried.text
    stored = api.ok("GET", f"/v1/training_runs/{run['id']}/checkpoints")["data"]
    assert len(stored) == 1 and retried.json() == stored[0]
    assert retried.json()["should_stop"] is True  # below the leader at rung 1 (n=2, top 1)
    assert retried.json()["stopping_reasons"] == {"asha": True}
    different = runs.post(run, 0.2, step=1)
    assert different.status_code == 409 and "different values" in different.json()["message"]
    assert runs.fetch(run)["checkpoint_count"] == 1


def test_refused_runs(api: Api) -> None:
    runs = Runs(api)
    other = Runs(api)
    assert runs.create("999999999").status_code == 400
    foreign = runs.create(other.suggestion())
    assert foreign.status_code == 400 and "No suggestion" in foreign.json()["message"]
    deleted = runs.suggestion()
    api.ok("DELETE", f"/v1/experiments/{runs.eid}/suggestions/{deleted}")
    assert runs.create(deleted).status_code == 400
    closed = runs.suggestion()
    api.ok(
        "POST",
        f"/v1/experiments/{runs.eid}/observations",
        json={"suggestion": closed, "values": [{"name": "acc", "value": 1.0}]},
    )
    answer = runs.create(closed)
    assert answer.status_code == 403 and "closed" in answer.json()["message"]
    unknown = runs.create(None, color="red")
    assert unknown.status_code == 400 and "color" in unknown.json()["message"]
    missing = api.post(f"/v1/experiments/{runs.eid}/training_runs", json={})
    assert missing.status_code == 400 and "suggestion" in missing.json()["message"]
    assert api.get(f"/v1/experiments/{other.eid}/training_runs/{runs.run()['id']}").status_code == (
        404
    )
    late = other.suggestion()
    api.ok("DELETE", f"/v1/experiments/{other.eid}")
    assert other.create(late).status_code == 400  # deleted experiment


def test_refused_checkpoints(api: Api) -> None:
    runs = Runs(api, {"max_checkpoints": 3, "early_stopping": {"rule": "none"}})
    run = runs.run()
    cases = [
        ({}, 400, '"values"'),
        ({"values": []}, 400, "at least one"),
        ({"values": [{"name": "f1", "value": 1.0}]}, 400, 'Unknown metric name in values: "f1"'),
        (
            {"values": [{"name": "acc", "value": 1.0}, {"name": "acc", "value": 2.0}]},
            400,
            'Duplicate value for metric "acc"',
        ),
        ({"values": [{"name": "acc", "value": 1.0}], "step": -1}, 400, "step"),
        ({"values": [{"name": "acc", "value": 1.0}], "epoch": 1}, 400, "epoch"),
        (
            {"values": [{"name": "acc", "value": 1.0}], "metadata": {str(n): n for n in range(6)}},
            400,
            "at most 5 keys",
        ),
    ]
    for body, status, words in cases:
        answer = runs.post(run, **body)
        assert answer.status_code == status and words in answer.json()["message"], answer.text
    path = f"/v1/experiments/{runs.eid}/training_runs/{run['id']}/checkpoints"
    for number in ("NaN", "Infinity", "-Infinity", "1e999"):
        raw = '{"values": [{"name": "acc", "value": NUMBER}]}'.replace("NUMBER", number)
        answer = api.post(path, data=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 400, (number, answer.text)

    runs.checkpoint(run, 0.5, step=10, metadata={"epoch": 10})
    backwards = runs.post(run, 0.6, step=5)
    assert backwards.status_code == 400 and "non-monotonic step" in backwards.json()["message"]
    assert runs.checkpoint(run, 0.6)["step"] == 11  # default: the last step + 1
    runs.checkpoint(run, 0.7, values=[{"name": "loss", "value": 0.3}])  # any subset of metrics
    full = runs.post(run, 0.8)
    assert full.status_code == 403 and "max_checkpoints (3)" in full.json()["message"]
    valid = {"values": [{"name": "acc", "value": 0.1}]}
    assert api.post("/v1/training_runs/99999999/checkpoints", json=valid).status_code == 404
    other = Runs(api)
    wrong = f"/v1/experiments/{other.eid}/training_runs/{run['id']}/checkpoints"
    assert api.get(wrong).status_code == 404


def test_experiments_without_a_monitor_read_as_before_and_never_stop(api: Api) -> None:
    runs = Runs(api)
    assert "training_monitor" not in runs.experiment
    assert "training_monitor" not in api.ok("GET", f"/v1/experiments/{runs.eid}")
    run = runs.run()
    answers = [runs.checkpoint(run, 0.9 - 0.001 * n) for n in range(200)]
    assert not any(a["should_stop"] for a in answers)
    assert {str(a["stopping_reasons"]) for a in answers} == {"{}"}
    assert runs.post(run, 0.1).status_code == 403  # 200 checkpoints at most
    assert runs.fetch(run)["best_checkpoint"] == answers[0]["id"]
    assert "stopped_at_step" not in runs.fetch(run)


def test_monitor_is_validated_set_and_removed_by_update(api: Api) -> None:
    bad = [
        ({"max_checkpoints": 0}, "max_checkpoints"),
        ({"max_checkpoints": 201}, "max_checkpoints"),
        ({}, "max_checkpoints"),
        ({"max_checkpoints": 5, "early_stopping": {"rule": "hyperband"}}, "rule"),
        ({"max_checkpoints": 5, "early_stopping": {"rule": "asha", "metric": "f1"}}, "f1"),
        ({"max_checkpoints": 5, "early_stopping_criteria": [dict(LOOK_BACK_2, type="x")]}, "type"),
        (
            {"max_checkpoints": 5, "early_stopping_criteria": [LOOK_BACK_2, LOOK_BACK_2]},
            "Duplicate names",
        ),
    ]
    for monitor, words in bad:
        answer = api.post("/v1/experiments", json=spec(monitor))
        assert answer.status_code == 400 and words in answer.json()["message"], answer.text
    runs = Runs(api)
    path = f"/v1/experiments/{runs.eid}"
    updated = api.ok("PUT", path, json={"training_monitor": {"max_checkpoints": 7}})
    assert updated["training_monitor"]["max_checkpoints"] == 7
    assert updated["training_monitor"]["early_stopping"]["rule"] == "asha"
    assert api.put(path, json={"training_monitor": {"max_checkpoints": 0}}).status_code == 400
    assert "training_monitor" not in api.ok("PUT", path, json={"training_monitor": None})


def test_asha_stops_runs_below_the_top_third_at_a_rung_and_none_before_min_step(api: Api) -> None:
    """Rungs at 1, 3, 9 (grace 1, r 3); no stop before step 3."""
    runs = Runs(api, asha(min_step=3, grace_step=1, reduction_factor=3))
    a, b, c, d = (runs.run() for _ in range(4))
    assert not runs.checkpoint(a, 0.5, step=1)["should_stop"]
    assert not runs.checkpoint(b, 0.1, step=1)["should_stop"]  # worse, but before min_step
    assert not runs.checkpoint(a, 0.6, step=3)["should_stop"]  # first at rung 3
    stopped = runs.checkpoint(b, 0.2, step=3)  # n=2: only the top 1 goes on
    assert stopped["should_stop"] and stopped["stopping_reasons"] == {"asha": True}
    assert (runs.fetch(b)["stopped_at_step"], runs.fetch(b)["stopping_reason"]) == (
        3,
        "asha_rung_3",
    )
    assert not runs.checkpoint(c, 0.9, step=3)["should_stop"]  # n=3: top 1, it is the best
    assert not runs.checkpoint(d, 0.05, step=2)["should_stop"]
    kept = runs.checkpoint(d, 0.65, step=4)  # passes rung 3: n=4, top 2, it is 2nd
    assert not kept["should_stop"] and kept["stopping_reasons"] == {"asha": False}
    again = runs.checkpoint(b, 0.95, step=9)  # a stop stands once answered
    assert again["should_stop"] and runs.fetch(b)["stopped_at_step"] == 3
    assert not runs.checkpoint(a, 0.7, step=9)["should_stop"]


def test_asha_follows_a_minimized_metric(api: Api) -> None:
    runs = Runs(api, asha(), objective="minimize")
    first, second, third = (runs.run() for _ in range(3))
    assert not runs.checkpoint(first, 0.5, step=1)["should_stop"]
    assert not runs.checkpoint(second, 0.4, step=1)["should_stop"]  # lower loss is better
    assert runs.checkpoint(third, 0.6, step=1)["should_stop"]


def test_median_rule_stops_a_run_whose_best_is_below_the_median(api: Api) -> None:
    monitor = {"max_checkpoints": 50, "early_stopping": {"rule": "median", "min_runs": 2}}
    runs = Runs(api, monitor)
    a, b, c, d, e = (runs.run() for _ in range(5))
    assert not runs.checkpoint(a, 0.5, step=1)["should_stop"]
    assert not runs.checkpoint(b, 0.45, step=1)["should_stop"]  # 1 other run: fewer than 2
    low = runs.checkpoint(c, 0.4, step=1)  # median of 0.5, 0.45 is 0.475
    assert low["should_stop"] and low["stopping_reasons"] == {"median": True}
    assert runs.fetch(c)["stopping_reason"] == "median_rung_1"
    assert not runs.checkpoint(d, 0.48, step=1)["should_stop"]
    # Rung 3 compares the run's best so far (0.9 at step 1), not its value there.
    assert not runs.checkpoint(a, 0.5, step=3)["should_stop"]
    assert not runs.checkpoint(d, 0.6, step=3)["should_stop"]
    assert not runs.checkpoint(e, 0.9, step=1)["should_stop"]
    assert not runs.checkpoint(e, 0.1, step=3)["should_stop"]


def test_observations_end_runs_and_tell_the_optimizer_where_they_stopped(
    server: RunningServer, api: Api
) -> None:
    runs = Runs(api, asha())
    leader, stopped, failed = (runs.run() for _ in range(3))
    runs.checkpoint(leader, 0.9, step=1)
    assert runs.checkpoint(stopped, 0.1, step=1)["should_stop"]
    observations = f"/v1/experiments/{runs.eid}/observations"
    for run, value in ((leader, 0.9), (stopped, 0.1)):
        body = {"suggestion": run["suggestion"], "values": [{"name": "acc", "value": value}]}
        api.ok("POST", observations, json=body)
    api.ok("POST", observations, json={"suggestion": failed["suggestion"], "failed": True})
    assert runs.fetch(failed)["state"] == "failed" and runs.fetch(failed)["finished"]
    assert runs.fetch(stopped)["state"] == "completed"

    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        with store.read() as session:
            rows = SqlRowSource(session, int(runs.eid), {"acc": "acc"}).observations_after(0)
    finally:
        store.dispose()
    by_suggestion = {str(row.suggestion_id): row.stopped_at_step for row in rows}
    assert by_suggestion == {leader["suggestion"]: None, stopped["suggestion"]: 1,
                             failed["suggestion"]: None}  # fmt: skip


def test_update_and_delete_runs(api: Api) -> None:
    runs = Runs(api)
    run = runs.run()
    path = f"/v1/experiments/{runs.eid}/training_runs/{run['id']}"
    renamed = api.ok("PUT", path, json={"name": "epoch sweep", "metadata": {"host": "i-1"}})
    assert renamed["name"] == "epoch sweep" and renamed["metadata"] == {"host": "i-1"}
    failed = api.ok("PUT", path, json={"state": "failed"})
    assert failed["state"] == "failed" and failed["finished"] and failed["completed"] is not None
    assert api.put(path, json={"state": "active"}).status_code == 400
    assert runs.checkpoint(run, 0.3)["step"] == 1  # open until an observation
    assert api.ok("DELETE", path) == {}
    assert api.get(path).status_code == 404
    listing = f"/v1/experiments/{runs.eid}/training_runs"
    assert api.ok("GET", listing)["count"] == 0
    assert api.ok("GET", listing, params={"deleted": "true"})["count"] == 1
    again = runs.create(run["suggestion"])
    assert again.status_code == 400 and "deleted" in again.json()["message"]


@contextmanager
def second_process(server: RunningServer) -> Iterator[RunningServer]:
    other = RunningServer.start(db_url=server.db_url, token=server.token)
    try:
        yield other
    finally:
        other.stop_process()


def test_two_processes_decide_as_one_serial_order(server: RunningServer, api: Api) -> None:
    """Many runs post rung checkpoints at once through two server processes on one database.

    What proves no lost update: every posted rung checkpoint left its value at the rung, and
    replaying each rung's values in the order they were recorded (their ids, allocated under
    the decision lock) gives exactly the decisions that were answered: each run that went on
    was in the top ceil(n/3) of the values recorded before it and its own, each stopped one
    was not. Without the lock two runs deciding at once miss each other's value and answer what
    no serial order allows."""
    runs = Runs(api, asha(reduction_factor=3, grace_step=1, min_step=1))
    count, threads = 36, 8
    created = [runs.run() for _ in range(count)]
    rng = random.Random(7)
    values = {r["id"]: {step: rng.random() for step in (1, 3, 9)} for r in created}
    answers: dict[tuple[str, int], bool] = {}
    lock = threading.Lock()
    with second_process(server) as other:
        urls = [server.url, other.url]
        start = threading.Barrier(threads)

        def worker(index: int) -> None:
            session = requests.Session()
            session.auth = (server.token, "")
            mine = created[index::threads]
            for step in (1, 3, 9):
                start.wait(timeout=60)  # every thread posts the same rung at once
                for n, run in enumerate(mine):
                    if any(answers.get((run["id"], rung), False) for rung in (1, 3)):
                        continue  # told to stop
                    url = f"{urls[(index + n) % 2]}/v1/training_runs/{run['id']}/checkpoints"
                    body = {"values": [{"name": "acc", "value": values[run["id"]][step]}]}
                    response = session.post(url, json={**body, "step": step}, timeout=60)
                    assert response.status_code == 200, response.text
                    with lock:
                        answers[(run["id"], step)] = response.json()["should_stop"]

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for future in [pool.submit(worker, i) for i in range(threads)]:
                future.result()

    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        with store.read() as session:
            ids = [int(r["id"]) for r in created]
            recorded = session.execute(
                select(RungValue.rung_step, RungValue.training_run_id, RungValue.value)
                .where(RungValue.experiment_id == int(runs.eid))
                .order_by(RungValue.id)
            ).all()
            stored = session.execute(
                select(Checkpoint.training_run_id, Checkpoint.step, Checkpoint.should_stop).where(
                    Checkpoint.training_run_id.in_(ids)
                )
            ).all()
            stopped = session.scalar(
                select(TrainingRun.id)
                .where(TrainingRun.id.in_(ids), TrainingRun.stopped_at_step.is_not(None))
                .limit(1)
            )
    finally:
        store.dispose()
    assert {(str(r), s) for r, s, _ in stored} == set(answers)
    assert {(str(r), rung) for rung, r, _ in recorded} == set(answers)  # none lost
    assert all(answers[(str(r), s)] == stop for r, s, stop in stored)
    for rung in (1, 3, 9):
        earlier: list[float] = []
        for step, run_id, value in recorded:
            if step != rung:
                continue
            rank = 1 + sum(1 for other in earlier if other > value)
            in_top_third = rank <= math.ceil((len(earlier) + 1) / 3)
            assert answers[(str(run_id), rung)] == (not in_top_third), (rung, run_id, value)
            earlier.append(value)
    assert stopped is not None and not all(answers.values())
