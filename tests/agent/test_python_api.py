"""``worker_bootstrap.run(evaluate, ...)``: the agent loop with a Python function, in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tests.agent.helpers import Api, emulator
from tests.support.server import RunningServer
from worker_bootstrap import run
from worker_bootstrap.evaluation import Context


def test_run_with_a_function(server: RunningServer, api: Api, tmp_path: Path) -> None:
    eid = api.create_experiment(budget=3)
    seen: list[str] = []

    def evaluate(assignments: dict[str, Any], context: Context) -> Any:
        seen.append(context.suggestion_id)
        assert context.checkpoint_dir.is_dir() and not context.resumed
        context.metadata["epochs"] = 3
        if len(seen) == 2:
            raise RuntimeError("diverged at epoch 2")
        return assignments["x"] + assignments["y"]

    stream = io.StringIO()
    with emulator("i-0pyapi000000001") as imds:
        summary = run(
            evaluate,
            experiment=eid,
            api_url=server.url,
            token=server.token,
            state_dir=tmp_path / "state",
            imds_endpoint=imds.url,
            environ={"OPTFLEET_ORPHAN_DETECTION": "lease"},
            stream=stream,
        )
    assert summary.evaluations == 3 and summary.failures == 1
    assert summary.stop_reason == "budget_reached"
    observations = {str(o["suggestion"]): o for o in api.observations(eid)}
    assert set(observations) == set(seen)
    failed = observations[seen[1]]
    assert failed["failed"] is True
    assert failed["metadata"]["failure_reason"] == (
        "evaluation raised RuntimeError: diverged at epoch 2"
    )
    ok = observations[seen[0]]
    assert ok["metadata"]["epochs"] == 3
    assert ok["values"][0]["value"] == ok["assignments"]["x"] + ok["assignments"]["y"]
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert server.token not in stream.getvalue()
    assert {e["instance_id"] for e in events} == {"i-0pyapi000000001"}
