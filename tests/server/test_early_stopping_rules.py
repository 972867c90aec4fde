"""The early-stopping rules as pure functions (suggestion_server/domain/early_stopping.py) and
the training monitor's validation and defaults (domain/training_monitor.py), on hand-built
curves: no server, no database."""

from __future__ import annotations

from typing import Any

import pytest

from suggestion_server.domain.early_stopping import (
    ConvergenceCriterion,
    RungDecision,
    StoppingPolicy,
    asha_keeps,
    convergence_satisfied,
    decide,
    median_stops,
    rule_decision,
    rung_reached,
)
from suggestion_server.domain.training_monitor import stopping_policy, validated_training_monitor
from suggestion_server.wire.errors import ApiError
from suggestion_server.wire.training_monitor import TrainingMonitorIn

METRICS = [
    {"name": "acc", "objective": "maximize", "strategy": "optimize", "threshold": None},
    {"name": "loss", "objective": "minimize", "strategy": "store", "threshold": None},
]
LOOK_BACK_2 = ConvergenceCriterion(
    name="Look Back 2 Steps", metric="acc", lookback_checkpoints=2, min_checkpoints=3
)


def policy(**changes: Any) -> StoppingPolicy:
    fields: dict[str, Any] = {
        "max_checkpoints": 200,
        "criteria": (),
        "rule": "asha",
        "metric": "acc",
        "min_step": 1,
        "reduction_factor": 3,
        "grace_step": 1,
        "min_runs": 5,
        "maximize": {"acc": True, "loss": False},
    }
    fields.update(changes)
    return StoppingPolicy(**fields)


def monitor(body: dict[str, Any]) -> dict[str, Any]:
    return validated_training_monitor(TrainingMonitorIn.model_validate(body), METRICS)


@pytest.mark.parametrize(
    ("step", "grace", "factor", "rung"),
    [
        (0, 1, 3, None),
        (1, 1, 3, 1),
        (2, 1, 3, 1),
        (3, 1, 3, 3),
        (8, 1, 3, 3),
        (9, 1, 3, 9),
        (30, 1, 3, 27),
        (1, 2, 2, None),
        (2, 2, 2, 2),
        (7, 2, 2, 4),
        (8, 2, 2, 8),
    ],
)
def test_rungs_are_grace_times_powers_of_the_factor(
    step: int, grace: int, factor: int, rung: int | None
) -> None:
    assert rung_reached(step, grace, factor) == rung


def test_convergence_stops_the_plateau_at_the_fifth_checkpoint() -> None:
    curve = [0.50, 0.60, 0.66, 0.66, 0.66]
    satisfied = [convergence_satisfied(curve[:k], LOOK_BACK_2, True) for k in range(1, 6)]
    assert satisfied == [False, False, False, False, True]


def test_convergence_follows_the_metric_direction_and_min_checkpoints() -> None:
    losses = [0.5, 0.4, 0.3, 0.35, 0.6]
    minimized = ConvergenceCriterion("loss flat", "loss", 2, 3)
    assert not convergence_satisfied(losses[:4], minimized, False)
    assert convergence_satisfied(losses, minimized, False)
    assert not convergence_satisfied(losses, minimized, True)  # maximized, 0.6 improves
    late = ConvergenceCriterion("late", "acc", 2, 6)
    assert not convergence_satisfied([0.5, 0.5, 0.5, 0.5, 0.5], late, True)
    assert convergence_satisfied([0.5] * 6, late, True)


def test_asha_keeps_the_top_third_of_what_a_rung_recorded_so_far() -> None:
    assert asha_keeps(0.1, [], 3, True)  # the first run at a rung always goes on
    assert not asha_keeps(0.1, [0.5], 3, True)  # n=2: top 1
    assert asha_keeps(0.9, [0.5], 3, True)
    assert asha_keeps(0.6, [0.5, 0.9, 0.2], 3, True)  # n=4: top 2, it is 2nd
    assert not asha_keeps(0.4, [0.5, 0.9, 0.2], 3, True)  # 3rd
    assert asha_keeps(0.5, [0.5], 3, True)  # a tie ranks with the value it equals
    assert asha_keeps(0.1, [0.5], 3, False)  # minimized: smaller is better
    assert asha_keeps(0.1, [0.5, 0.2, 0.3], 2, True) is False  # r=2, n=4: top 2


def test_median_rule_compares_the_best_so_far_with_the_others_median() -> None:
    assert median_stops(0.4, [0.5, 0.7], 2, True)
    assert not median_stops(0.4, [0.5], 2, True)  # fewer than min_runs others
    assert not median_stops(0.6, [0.5, 0.7], 2, True)  # equal to the median
    assert not median_stops(0.65, [0.5, 0.7], 2, True)
    assert median_stops(0.8, [0.5, 0.7, 0.6], 2, False)  # minimized


def test_nothing_stops_before_min_step() -> None:
    strict = policy(min_step=3)
    early = rule_decision(strict, step=2, rung_step=1, value=0.0, best_so_far=0.0, others=[1.0])
    assert early == RungDecision(rung_step=1, stops=False)
    late = rule_decision(strict, step=3, rung_step=3, value=0.0, best_so_far=0.0, others=[1.0])
    assert late.stops


def test_decision_names_each_reason_and_the_first_stop() -> None:
    sigopt = policy(rule="none", max_checkpoints=10, criteria=(LOOK_BACK_2,))
    flat = {"acc": [0.5, 0.6, 0.66, 0.66, 0.66]}
    stop = decide(sigopt, checkpoint_count=5, curves=flat, rung=None, earlier_reason=None)
    assert (stop.should_stop, stop.stopping_reasons, stop.reason) == (
        True,
        {"Look Back 2 Steps": True},
        "convergence",
    )
    first_four = {"acc": flat["acc"][:4]}
    going = decide(sigopt, checkpoint_count=4, curves=first_four, rung=None, earlier_reason=None)
    assert not going.should_stop and going.stopping_reasons == {"Look Back 2 Steps": False}
    full = decide(sigopt, checkpoint_count=10, curves={}, rung=None, earlier_reason=None)
    assert full.should_stop and full.reason == "max_checkpoints"
    assert full.stopping_reasons == {"Look Back 2 Steps": False}


def test_a_rung_at_the_last_checkpoint_is_no_early_stop() -> None:
    # Rungs 1, 3, 9, 27 with max_checkpoints 27: a run ranked out at rung 27 has run its full
    # length; it ends at max_checkpoints (the engine takes its value as a full-length value).
    asha = policy(max_checkpoints=27)
    out = RungDecision(rung_step=27, stops=True)
    last = decide(asha, checkpoint_count=27, curves={}, rung=out, earlier_reason=None)
    assert (last.should_stop, last.reason, last.stopping_reasons) == (
        True,
        "max_checkpoints",
        {"asha": False},
    )
    early = RungDecision(rung_step=9, stops=True)
    before = decide(asha, checkpoint_count=9, curves={}, rung=early, earlier_reason=None)
    assert (before.should_stop, before.reason) == (True, "asha_rung_9")


def test_every_criterion_must_hold() -> None:
    other = ConvergenceCriterion("loss flat", "loss", 1, 2)
    both = policy(rule="none", criteria=(LOOK_BACK_2, other))
    curves = {"acc": [0.5, 0.6, 0.66, 0.66, 0.66], "loss": [1.0, 0.9, 0.8, 0.7, 0.6]}
    answer = decide(both, checkpoint_count=5, curves=curves, rung=None, earlier_reason=None)
    assert not answer.should_stop
    assert answer.stopping_reasons == {"Look Back 2 Steps": True, "loss flat": False}


def test_rule_stop_is_named_by_its_rung_and_stands_afterwards() -> None:
    asha = policy()
    stopped = decide(
        asha, checkpoint_count=3, curves={}, rung=RungDecision(9, True), earlier_reason=None
    )
    assert stopped.should_stop and stopped.reason == "asha_rung_9"
    assert stopped.stopping_reasons == {"asha": True}
    later = decide(asha, checkpoint_count=4, curves={}, rung=None, earlier_reason="asha_rung_9")
    assert later.should_stop and later.reason is None and later.stopping_reasons == {"asha": True}
    kept = decide(
        asha, checkpoint_count=3, curves={}, rung=RungDecision(9, False), earlier_reason=None
    )
    assert not kept.should_stop and kept.stopping_reasons == {"asha": False}


def test_without_a_monitor_nothing_stops() -> None:
    answer = decide(None, checkpoint_count=200, curves={}, rung=None, earlier_reason=None)
    assert not answer.should_stop and answer.stopping_reasons == {}


def criterion(**changes: Any) -> dict[str, Any]:
    return {
        "type": "convergence",
        "name": "Look Back 2 Steps",
        "metric": "acc",
        "lookback_checkpoints": 2,
        "min_checkpoints": 3,
        **changes,
    }


def test_defaults_sigopt_criteria_mean_no_rule_and_nothing_means_asha() -> None:
    sigopt = monitor({"max_checkpoints": 10, "early_stopping_criteria": [criterion()]})
    assert sigopt["early_stopping"]["rule"] == "none"
    assert sigopt["early_stopping_criteria"] == [criterion()]
    plain = monitor({"max_checkpoints": 50})
    assert plain == {
        "max_checkpoints": 50,
        "early_stopping_criteria": [],
        "early_stopping": {
            "rule": "asha",
            "metric": "acc",
            "min_step": 1,
            "reduction_factor": 3,
            "grace_step": 1,
            "min_runs": 5,
        },
    }
    tuned = monitor({"max_checkpoints": 50, "early_stopping": {"rule": "median", "min_step": 4}})
    assert tuned["early_stopping"]["grace_step"] == 4  # defaults to min_step
    resolved = stopping_policy(tuned, METRICS)
    assert resolved is not None and resolved.rule == "median" and resolved.is_maximized("acc")
    unnamed = monitor({"max_checkpoints": 5, "early_stopping_criteria": [criterion(metric=None)]})
    assert unnamed["early_stopping_criteria"][0]["metric"] == "acc"  # first optimized metric


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"max_checkpoints": 0}, "training_monitor.max_checkpoints: 0"),
        ({"max_checkpoints": 201}, "from 1 to 200"),
        (
            {"max_checkpoints": 5, "early_stopping": {"rule": "asha", "metric": "f1"}},
            'Unknown metric in training_monitor.early_stopping.metric: "f1"',
        ),
        (
            {"max_checkpoints": 5, "early_stopping": {"rule": "asha", "reduction_factor": 1}},
            "early_stopping.reduction_factor: 1",
        ),
        (
            {"max_checkpoints": 5, "early_stopping": {"rule": "median", "min_runs": 0}},
            "early_stopping.min_runs: 0",
        ),
        (
            {
                "max_checkpoints": 5,
                "early_stopping_criteria": [criterion(name="a"), criterion(name="a")],
            },
            'Duplicate names in training_monitor.early_stopping_criteria: ["a"]',
        ),
        (
            {"max_checkpoints": 5, "early_stopping_criteria": [criterion(metric="nope")]},
            "early_stopping_criteria[0].metric",
        ),
        (
            {"max_checkpoints": 5, "early_stopping_criteria": [criterion(lookback_checkpoints=0)]},
            "early_stopping_criteria[0].lookback_checkpoints: 0",
        ),
        (
            {
                "max_checkpoints": 5,
                "early_stopping": {"rule": "asha"},
                "early_stopping_criteria": [criterion(name="asha")],
            },
            'Invalid name in training_monitor.early_stopping_criteria: "asha"',
        ),
    ],
)
def test_invalid_monitors_name_the_field(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ApiError) as info:
        monitor(body)
    assert info.value.status == 400 and words in info.value.message, info.value.message
