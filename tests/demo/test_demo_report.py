"""The demo summary counts what the server's observations say."""

from __future__ import annotations

from typing import Any

from optfleet.demo_report import counts_by_instance, duplicate_count, summarize


def obs(
    oid: int, suggestion: int, instance: str, value: float | None = None, **meta: Any
) -> dict[str, Any]:
    return {
        "id": str(oid),
        "suggestion": str(suggestion),
        "assignments": {"x": oid / 10},
        "failed": value is None,
        "values": [] if value is None else [{"name": "m", "value": value}],
        "metadata": {"instance_id": instance, **meta},
    }


def test_counts_resumed_adopted_failed_per_instance_and_duplicates() -> None:
    observations = [
        obs(5, 5, "i-b", -1.0, adopted_by="i-b", previous_instance_ids="i-dead"),
        obs(4, 4, "i-a", None, failure_reason="diverged"),
        obs(
            3,
            3,
            "i-a",
            -2.5,
            resumed=1,
            stopped_early=1,
            stopped_at_step=5,
            stopping_reason="asha_rung_5",
        ),
        obs(2, 2, "i-a", -0.5, resumed="1"),
        obs(1, 1, "i-b", -0.1, resumed=0),
    ]
    counts = counts_by_instance(observations)
    assert (counts["i-a"].done, counts["i-a"].failed, counts["i-a"].resumed) == (2, 1, 2)
    assert (counts["i-b"].done, counts["i-b"].adopted, counts["i-b"].resumed) == (2, 1, 0)
    assert duplicate_count(observations) == 0
    assert duplicate_count([*observations, obs(6, 3, "i-c", -2.5)]) == 1

    summary = summarize(observations, open_left=0, objective="minimize", instances=[], wall_s=1.23)
    assert summary["best"] == {
        "value": -2.5,
        "assignments": {"x": 0.3},
        "suggestion": "3",
        "instance_id": "i-a",
    }
    assert summary["failures"] == [{"suggestion": "4", "instance_id": "i-a", "reason": "diverged"}]
    assert (summary["resumed"], summary["adopted"], summary["failed"]) == (2, 1, 1)
    assert summary["observations_by_instance"] == {"i-a": 3, "i-b": 2}
    assert summary["stopped_early"] == 1
    assert summary["stopped_early_suggestions"] == [
        {"suggestion": "3", "stopped_at_step": 5, "stopping_reason": "asha_rung_5"}
    ]
    assert summarize(observations, 0, "maximize", [], 0)["best"]["value"] == -0.1
