"""Core and AI experiments as the agent reads them: the budget, the open count, the kind, and
how an observation becomes a run's values (worker_bootstrap/ai_runs.py, experiment_status.py)."""

from __future__ import annotations

from typing import Any

import pytest

from worker_bootstrap.ai_runs import AiRunsApi, is_ai_experiment
from worker_bootstrap.api_client import ApiError
from worker_bootstrap.experiment_status import budget_reached, open_count


def ai(remaining: Any, active: int = 0) -> dict[str, Any]:
    progress = {"remaining_budget": remaining, "active_run_count": active}
    return {"object": "aiexperiment", "runs_only": True, "progress": progress}


def test_budget_of_both_kinds() -> None:
    core = {"observation_budget": 3, "progress": {"observation_count": 2}}
    assert not budget_reached(core)
    assert budget_reached({**core, "progress": {"observation_count": 3}})
    assert not budget_reached({"progress": {"observation_count": 9}})  # no budget
    assert not budget_reached(ai(1)) and budget_reached(ai(0)) and budget_reached(ai(-1))
    assert not budget_reached(ai(None))  # an AI experiment without a budget never ends
    assert not budget_reached({**ai(None), "observation_budget": True})


def test_open_count_and_kind() -> None:
    assert open_count({"progress": {"open_suggestion_count": 4}}) == 4
    assert open_count(ai(2, active=3)) == 3
    assert open_count({"progress": {}}) is None
    assert is_ai_experiment(ai(1)) and not is_ai_experiment({"object": "experiment"})
    with pytest.raises(ValueError, match="experiment kind"):
        AiRunsApi("http://127.0.0.1:9", "t", kind="project")


@pytest.mark.parametrize(
    ("metrics", "values", "expected"),
    [
        (["score"], [{"value": 0.5}], {"score": {"value": 0.5}}),
        (
            ["a", "b"],
            [{"name": "b", "value": 1, "value_stddev": 0.1}, {"name": "a", "value": 2}],
            {"a": {"value": 2}, "b": {"value": 1, "value_stddev": 0.1}},
        ),
    ],
)
def test_values_by_metric_name(
    metrics: list[str], values: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    api = AiRunsApi("http://127.0.0.1:9", "t", kind="ai")
    api._metrics = metrics
    assert api._values_by_name("1", values) == expected


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([{"name": "loss", "value": 1}], "Unknown metric name 'loss'"),
        ([{"value": 1}], "Unknown metric name None"),  # unnamed with two metrics
        ([{"name": "a", "value": 1}], "Missing value for metric 'b'"),
    ],
)
def test_values_the_experiment_does_not_take(values: list[dict[str, Any]], words: str) -> None:
    api = AiRunsApi("http://127.0.0.1:9", "t", kind="ai")
    api._metrics = ["a", "b"]
    with pytest.raises(ApiError, match=words) as raised:
        api._values_by_name("1", values)
    assert raised.value.status == 400
