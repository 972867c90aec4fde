"""The official `sigopt` 8.8.3 client, unmodified, runs SigOpt >= 8 scripts against optfleet
(docs/api.md, "Projects, AI experiments and runs"), on SQLite and on PostgreSQL: a script
configured by SIGOPT_API_URL / SIGOPT_API_TOKEN / SIGOPT_PROJECT alone, run as its own process,
and 200 concurrent `experiment.loop()` workers spending one budget (marked slow: `make
test-fast` leaves it out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sigopt
from sigopt.factory import SigOptFactory
from sqlalchemy import func, select

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.models import Observation, Suggestion, TrainingRun
from tests.server.conftest import Api
from tests.support.server import RunningServer

SCRIPT = textwrap.dedent(
    """
    import json
    import sigopt
    from sigopt.exception import ConflictingProjectException

    out = {}
    out["project"] = sigopt.create_project().to_json()
    try:
        sigopt.create_project()
    except ConflictingProjectException:
        out["conflict"] = True

    experiment = sigopt.create_experiment(
        name="script experiment",
        parameters=[
            {"name": "lr", "type": "double", "bounds": {"min": 0.0001, "max": 1.0}},
            {"name": "depth", "type": "int", "bounds": {"min": 1, "max": 8}},
            {"name": "act", "type": "categorical", "categorical_values": ["relu", "tanh"]},
        ],
        metrics=[{"name": "accuracy", "objective": "maximize"}],
        budget=6,
        parallel_bandwidth=2,
    )
    out["experiment"] = experiment.id
    out["created_progress"] = experiment.progress.to_json()
    out["runs"] = []
    for number, run in enumerate(experiment.loop()):
        try:
            with run:
                params = dict(run.params)
                for epoch in range(3):
                    run.log_checkpoint({"accuracy": 0.1 * epoch})
                run.log_metadata("epochs", 3)
                if number == 2:
                    raise ValueError("diverged")
                run.log_metric("accuracy", params["lr"] + params["depth"])
        except ValueError:
            out["caught"] = number
        out["runs"].append({"id": run.id, "params": params})
    experiment.refresh()
    out["progress"] = experiment.progress.to_json()
    out["finished"] = experiment.is_finished()
    out["best"] = [r.to_json() for r in experiment.get_best_runs()]
    out["listed"] = [r.to_json() for r in experiment.get_runs()]

    with sigopt.create_run(name="plain run") as plain:
        plain.params.batch_size = 32
        plain.params.optimizer = "adam"
        plain.log_checkpoint({"loss": 0.5})
        plain.log_metric("loss", 0.25, stddev=0.01)
        plain.log_metrics({"f1": 0.75, "recall": 0.5})
        plain.log_dataset("mnist")
        plain.log_model("cnn")
    out["plain"] = sigopt.get_run(plain.id).to_json()
    sigopt.archive_run(plain.id)
    sigopt.unarchive_run(plain.id)
    out["unarchived"] = sigopt.get_run(plain.id).deleted

    sigopt.archive_experiment(experiment.id)
    out["archived_state"] = sigopt.get_experiment(experiment.id).state
    sigopt.unarchive_experiment(experiment.id)
    out["unarchived_state"] = sigopt.get_experiment(experiment.id).state
    print(json.dumps(out))
    """
)


def sigopt_env(server: RunningServer, project: str, home: Path) -> dict[str, str]:
    """The environment of a SigOpt >= 8 script pointed at ``server``: only these change."""
    return {
        **os.environ,
        "SIGOPT_API_URL": server.url,
        "SIGOPT_API_TOKEN": server.token,
        "SIGOPT_PROJECT": project,
        "SIGOPT_HOME": str(home),  # no ~/.sigopt config of whoever runs the tests
    }


def run_script(server: RunningServer, project: str, tmp_path: Path, code: str) -> Any:
    script = tmp_path / "script.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=sigopt_env(server, project, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_sigopt_8_script_runs_with_only_the_environment_changed(
    server: RunningServer, api: Api, tmp_path: Path
) -> None:
    project = f"script-{uuid.uuid4().hex[:8]}"
    out = run_script(server, project, tmp_path, SCRIPT)

    assert out["project"]["id"] == project and out["project"]["object"] == "project"
    assert out["conflict"] is True
    assert out["created_progress"] == {
        "object": "progress",
        "finished_run_count": 0,
        "active_run_count": 0,
        "total_run_count": 0,
        "remaining_budget": 6,
    }
    assert len(out["runs"]) == 6 and out["caught"] == 2  # the loop went on after the failure
    assert out["progress"]["remaining_budget"] == 0 and out["finished"] is True
    assert out["progress"]["finished_run_count"] == 6 and out["progress"]["active_run_count"] == 0
    for run in out["runs"]:
        params = run["params"]
        assert 0.0001 <= params["lr"] <= 1.0 and isinstance(params["lr"], float)
        assert params["depth"] in range(1, 9) and params["act"] in ("relu", "tanh")

    listed = {r["id"]: r for r in out["listed"]}
    assert sorted(listed) == sorted(r["id"] for r in out["runs"])
    failed = listed[out["runs"][2]["id"]]
    assert failed["state"] == "failed" and failed["observation"] is not None
    for run in listed.values():
        assert run["experiment"] == out["experiment"] and run["project"] == project
        assert run["checkpoint_count"] == 3 and run["metadata"] == {"epochs": 3}
        assert run["assignments_sources"] == {"SigOpt": {"sort": 1, "default_show": True}}
        assert set(run["assignments_meta"]) == {"lr", "depth", "act"}

    # One observation per run, made from it: the Core listing shows them.
    observations = api.ok("GET", f"/v1/experiments/{out['experiment']}/observations")["data"]
    assert len(observations) == 6 and sum(o["failed"] for o in observations) == 1
    by_suggestion = {o["suggestion"]: o for o in observations}
    for run in listed.values():
        observation = by_suggestion[run["suggestion"]]
        assert observation["id"] == run["observation"]
        if run["state"] == "completed":
            expected = run["assignments"]["lr"] + run["assignments"]["depth"]
            assert observation["values"][0]["value"] == pytest.approx(expected)

    completed = [r for r in listed.values() if r["state"] == "completed"]
    best = max(completed, key=lambda r: r["values"]["accuracy"]["value"])
    assert [r["id"] for r in out["best"]] == [best["id"]]

    plain = out["plain"]
    assert plain["experiment"] is None and plain["suggestion"] is None
    assert plain["observation"] is None and plain["state"] == "completed"
    assert plain["assignments"] == {"batch_size": 32, "optimizer": "adam"}
    assert (
        plain["values"]["loss"]["value"] == 0.25 and plain["values"]["loss"]["value_stddev"] == 0.01
    )
    assert plain["values"]["f1"]["value"] == 0.75 and plain["checkpoint_count"] == 1
    assert plain["datasets"] == {"mnist": {}} and plain["model"]["type"] == "cnn"
    assert out["unarchived"] is False
    assert out["archived_state"] == "deleted" and out["unarchived_state"] == "active"


def test_a_script_without_the_project_fails_as_sigopt_says(
    server: RunningServer, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import json
        import sigopt
        from sigopt.exception import ProjectNotFoundException
        try:
            sigopt.create_run(name="orphan")
        except ProjectNotFoundException as exc:
            print(json.dumps({"not_found": str(exc)}))
        """
    )
    out = run_script(server, f"missing-{uuid.uuid4().hex[:8]}", tmp_path, code)
    assert "not_found" in out


LOOP_WORKERS = 200
LOOP_BUDGET = 1000
LOOP_BANDWIDTH = 20


Interval = tuple[str, float, float]


def _loop_worker(server: RunningServer, project: str, experiment_id: str) -> list[Interval]:
    """One user process's worth of work: its own connection, the unmodified loop. Returns, per
    run, its assignments and a time interval that contains the whole life of its suggestion
    (from before the loop's check to after the run's end)."""
    connection = sigopt.Connection(client_token=server.token)
    connection.set_api_url(server.url)
    experiment = SigOptFactory(project, connection=connection).get_aiexperiment(experiment_id)
    intervals = []
    runs = experiment.loop()
    while True:
        before = time.monotonic()
        run = next(runs, None)
        if run is None:
            return intervals
        with run:
            run.log_metric("accuracy", -((run.params.x - 0.3) ** 2) + 0.1 * run.params.k)
        intervals.append((json.dumps(dict(run.params), sort_keys=True), before, time.monotonic()))


def open_duplicates(intervals: list[Interval]) -> int:
    """Pairs of runs with equal assignments whose suggestions may have been open at once."""
    by_assignments: dict[str, list[tuple[float, float]]] = {}
    for key, start, end in intervals:
        by_assignments.setdefault(key, []).append((start, end))
    pairs = 0
    for spans in by_assignments.values():
        spans.sort()
        pairs += sum(1 for (_, end), (start, _) in zip(spans, spans[1:]) if start < end)
    return pairs


@pytest.mark.slow  # a load test: ~30 s on SQLite, ~40 s on PostgreSQL here
def test_200_loop_workers_spend_a_budget_of_1000_exactly(server: RunningServer, api: Api) -> None:
    project = f"loop-{uuid.uuid4().hex[:8]}"
    client = api.ok("GET", "/v1/tokens/self")["client"]
    api.ok("POST", f"/v1/clients/{client}/projects", json={"id": project, "name": project})
    experiment = api.ok(
        "POST",
        f"/v1/clients/{client}/projects/{project}/aiexperiments",
        json={
            "name": "200 workers",
            "parameters": [
                {"name": "x", "type": "double", "bounds": {"min": 0.0, "max": 1.0}},
                {"name": "k", "type": "int", "bounds": {"min": 0, "max": 20}},
                {"name": "c", "type": "categorical", "categorical_values": ["a", "b", "c"]},
            ],
            "metrics": [{"name": "accuracy", "objective": "maximize"}],
            "budget": LOOP_BUDGET,
            "parallel_bandwidth": LOOP_BANDWIDTH,
        },
    )
    eid = experiment["id"]
    started = time.monotonic()
    # Hold every worker until all exist: the loops race from their first check on.
    gate = threading.Barrier(LOOP_WORKERS)

    def worker() -> list[Interval]:
        gate.wait()
        return _loop_worker(server, project, eid)

    with ThreadPoolExecutor(LOOP_WORKERS) as pool:
        per_worker = list(pool.map(lambda _: worker(), range(LOOP_WORKERS)))
    wall_s = time.monotonic() - started
    intervals = [interval for runs_of_one in per_worker for interval in runs_of_one]

    progress = api.ok("GET", f"/v1/aiexperiments/{eid}")["progress"]
    store = Store(make_engine(server.db_url, pool_size=1))
    try:
        with store.read() as session:
            runs = session.execute(
                select(
                    TrainingRun.state, TrainingRun.observation_id, TrainingRun.suggestion_id
                ).where(TrainingRun.experiment_id == int(eid))
            ).all()
            observations = session.scalar(
                select(func.count()).where(Observation.experiment_id == int(eid))
            )
            assignments = session.scalars(
                select(Suggestion.assignments_json).where(Suggestion.experiment_id == int(eid))
            ).all()
    finally:
        store.dispose()
    # A repeat of a finished point is allowed (the optimizer may return to a bound); two equal
    # suggestions open at once are not.
    repeated = {key: n for key, n in Counter(assignments).items() if n > 1}
    repeats = sum(n - 1 for n in repeated.values())
    overlapping = open_duplicates(intervals)
    overshoot = len(runs) - LOOP_BUDGET
    counts = [len(runs_of_one) for runs_of_one in per_worker]
    print(
        f"\n{LOOP_WORKERS} loop workers, budget {LOOP_BUDGET}: {len(runs)} runs, "
        f"overshoot {overshoot}, {observations} observations, {overlapping} duplicate open "
        f"suggestions ({repeats} repeats of finished points), wall {wall_s:.1f} s, runs per "
        f"worker {min(counts)}-{max(counts)}; repeated: {list(repeated)[:3]}"
    )
    assert len(intervals) == len(runs)
    assert 0 <= overshoot <= LOOP_BANDWIDTH
    assert overshoot == 0  # what the reservations achieve when no worker dies mid-loop
    assert all(state == "completed" for state, _, _ in runs)
    assert all(observation is not None for _, observation, _ in runs)
    assert observations == len(runs)  # exactly one observation per run
    assert len({suggestion for _, _, suggestion in runs}) == len(runs)
    assert overlapping == 0
    assert progress == {
        "object": "progress",
        "finished_run_count": len(runs),
        "active_run_count": 0,
        "total_run_count": len(runs),
        "remaining_budget": LOOP_BUDGET - len(runs),
    }
