"""Checkpoint posts and training-run creates on the hot-write layer answer like the FastAPI routes,
and a group commit of several checkpoint posts answers each as if it came alone.

The first test is test_hot_writes.py's: two loopback servers over two fresh SQLite files with
the same frozen clock, one with the layer (checkpoint posts go to the group-committing writer)
and one without, get the same requests; status, content type and body must be identical. The
second calls ``services.checkpoints.create_checkpoints`` with one batch holding two steps of a
run, a re-post, a conflicting re-post, refused posts and a rung decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from suggestion_server.app import create_app
from suggestion_server.services.checkpoints import CheckpointPost, create_checkpoints
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.models import RungValue, TrainingRun
from suggestion_server.wire.errors import ApiError
from suggestion_server.wire.schemas import validate_body
from suggestion_server.wire.training_runs import CheckpointCreate
from tests.server.test_hot_writes import OTHER_TOKEN, TOKEN, LoopbackServer, both
from tests.server.test_hot_writes import servers as servers  # the same pair, fresh per module
from tests.support.loopback import LoopbackApp

MONITOR = {"max_checkpoints": 4, "early_stopping": {"rule": "asha", "reduction_factor": 2}}
SPEC = {
    "name": "checkpoints",
    "parameters": [{"name": "x", "type": "int", "bounds": {"min": 0, "max": 9}}],
    "metrics": [
        {"name": "acc", "objective": "maximize"},
        {"name": "loss", "objective": "minimize", "strategy": "store"},
    ],
    "observation_budget": 20,
    "training_monitor": MONITOR,
}


def values(acc: float) -> dict[str, Any]:
    return {"values": [{"name": "acc", "value": acc}]}


def test_checkpoints_and_runs_answer_alike(servers: tuple[LoopbackServer, ...]) -> None:
    assert both(servers, "POST", "/v1/experiments", json=SPEC)[0] == 200
    exp = "/v1/experiments/1"
    for x in (1, 2, 3, 4):
        both(servers, "POST", f"{exp}/suggestions", json={"assignments": {"x": x}})
    runs = f"{exp}/training_runs"
    ck = f"{runs}/1/checkpoints"
    other = "/v1/training_runs/2/checkpoints"
    cases: list[tuple[str, str, dict[str, Any]]] = [
        # Runs: create, the same run again, bad input.
        ("POST", runs, {"json": {"suggestion": "1"}}),
        ("POST", runs, {"json": {"suggestion": "1"}}),
        ("POST", runs, {"json": {"suggestion": "2", "metadata": {"w": 1}}}),
        ("POST", runs, {"json": {"suggestion": "999"}}),
        ("POST", runs, {"json": {"suggestion": "3", "color": "red"}}),
        ("POST", runs, {"json": {}}),
        ("POST", "/v1/experiments/999/training_runs", {"json": {"suggestion": "1"}}),
        # Checkpoints on both paths: rungs (1, 2, 4), default steps, metadata, fields, skip.
        ("POST", ck, {"json": {**values(0.5), "step": 1}}),
        ("POST", other, {"json": {**values(0.4), "step": 1}}),  # below run 1 at rung 1: stop
        ("POST", ck, {"json": {**values(0.5), "step": 1}}),  # a re-post: the same answer
        ("POST", ck, {"json": {**values(0.6), "step": 1}}),  # 409
        ("POST", ck, {"json": values(0.6)}),  # step 2 by default
        ("POST", f"{ck}?fields=id,should_stop", {"json": {**values(0.7), "metadata": {"e": 3}}}),
        ("POST", other, {"json": {"values": [{"name": "loss", "value": 0.2}], "step": 2}}),
        ("POST", ck, {"json": values(0.8), "headers": {"X-Response-Content": "skip"}}),
        ("POST", ck, {"json": values(0.9)}),  # 403: max_checkpoints (4)
        # Bad input.
        ("POST", other, {"json": {**values(0.1), "step": 2}}),  # non-monotonic
        ("POST", other, {"json": {}}),
        ("POST", other, {"json": {"values": []}}),
        ("POST", other, {"json": {"values": [{"name": "f1", "value": 1.0}]}}),
        ("POST", other, {"json": {**values(0.1), "epoch": 1}}),
        ("POST", other, {"json": {**values(0.1), "step": -1}}),
        ("POST", other, {"json": {**values(0.1), "metadata": {str(n): n for n in range(6)}}}),
        ("POST", other, {"data": b'{"values": [{"name": "acc", "value": NaN}]}'}),
        ("POST", other, {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", f"{other}?fields=nope", {"json": values(0.3)}),
        ("POST", "/v1/training_runs/999/checkpoints", {"json": values(0.1)}),
        ("POST", "/v1/training_runs/99999999999999999999999/checkpoints", {"json": values(0.1)}),
        ("POST", "/v1/experiments/999/training_runs/1/checkpoints", {"json": values(0.1)}),
        ("POST", f"{other}?fields=id%00", {"json": values(0.1)}),
    ]
    for method, path, kwargs in cases:
        both(servers, method, path, **kwargs)
    # Authentication: none, unknown, another client's run.
    assert both(servers, "POST", other, token=None, json=values(0.1))[0] == 401
    assert both(servers, "POST", other, token="unknown-token", json=values(0.1))[0] == 403
    assert both(servers, "POST", other, token=OTHER_TOKEN, json=values(0.1))[0] == 404
    # The runs as the checkpoints left them.
    for run in ("1", "2"):
        assert both(servers, "GET", f"{runs}/{run}")[0] == 200
        assert both(servers, "GET", f"{runs}/{run}/checkpoints")[0] == 200


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerContext, list[int]]]:
    """A server's context and two runs of an experiment with ``MONITOR`` (reduction factor 2:
    rungs at steps 1, 2, 4)."""
    app = create_app(f"sqlite:///{tmp_path / 'batch.db'}", bootstrap_token=TOKEN)
    with LoopbackApp(app) as server:
        session = requests.Session()
        session.auth = (TOKEN, "")
        eid = session.post(f"{server.url}/v1/experiments", json=SPEC, timeout=30).json()["id"]
        run_ids = []
        for x in (1, 2):
            path = f"{server.url}/v1/experiments/{eid}"
            suggestion = session.post(
                f"{path}/suggestions", json={"assignments": {"x": x}}, timeout=30
            ).json()["id"]
            run = session.post(
                f"{path}/training_runs", json={"suggestion": suggestion}, timeout=30
            ).json()
            run_ids.append(int(run["id"]))
        yield app.state.context, run_ids


def post(run: int, acc: float | None = None, **body: Any) -> CheckpointPost:
    if acc is not None:
        body = {**values(acc), **body}
    return CheckpointPost(client_id=1, run_id=run, body=validate_body(CheckpointCreate, body))


def test_a_batch_answers_each_post_as_if_alone(
    served: tuple[ServerContext, list[int]],
) -> None:
    ctx, (first, second) = served
    batch = [
        post(first, 0.9, step=1),  # rung 1: the first value there, kept
        post(second, 0.1, step=1),  # rung 1 after it in the same batch: below, stopped
        post(first, 0.9, step=1),  # a re-post of a step stored by this batch: the same answer
        post(first, 0.8, step=1),  # the same step with other values: 409
        post(first, 0.95, step=2),  # rung 2: the first value there
        post(second, values=[{"name": "f1", "value": 1.0}], step=2),  # refused: 400
        post(999, 0.5),  # no such run: 404
        post(second, 0.2, step=3),  # a stopped run's later checkpoint still says stop
    ]
    answers = create_checkpoints(ctx, batch)
    assert not isinstance(answers[0], ApiError) and answers[0]["should_stop"] is False
    assert not isinstance(answers[1], ApiError) and answers[1]["should_stop"] is True
    assert answers[1]["stopping_reasons"] == {"asha": True}
    assert answers[2] == answers[0]
    assert isinstance(answers[3], ApiError) and answers[3].status == 409
    assert not isinstance(answers[4], ApiError) and answers[4]["should_stop"] is False
    assert isinstance(answers[5], ApiError) and answers[5].status == 400
    assert isinstance(answers[6], ApiError) and answers[6].status == 404
    assert not isinstance(answers[7], ApiError) and answers[7]["should_stop"] is True
    # Stored as answered: re-posting each stored step alone gives the batch's answer.
    again = create_checkpoints(
        ctx, [post(first, 0.9, step=1), post(second, 0.1, step=1), post(first, 0.95, step=2)]
    )
    assert again == [answers[0], answers[1], answers[4]]
    with ctx.store.read() as session:
        rungs = session.execute(select(RungValue.rung_step, RungValue.training_run_id)).all()
        stopped = session.get(TrainingRun, second)
        best = session.get(TrainingRun, first)
    assert sorted(tuple(r) for r in rungs) == sorted([(1, first), (1, second), (2, first)])
    assert stopped is not None and stopped.stopping_reason == "asha_rung_1"
    assert stopped.checkpoint_count == 2 and stopped.stopped_at_step == 1
    assert best is not None and best.checkpoint_count == 2 and best.best_value == 0.95
    assert str(best.best_checkpoint_id) == answers[4]["id"]
