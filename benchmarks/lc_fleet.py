"""A simulated fleet training with early stopping, and the methods bench_learning_curves compares.

Time is simulated: ``workers`` instances start together; each asks for a configuration, trains
it epoch by epoch (an epoch takes the problem's ``epoch_seconds`` times a jitter in [0.9, 1.1]
drawn from the seed, so workers drift apart), reports each epoch's value to the method's
stopping rule, and on a stop or after the last epoch tells the value and asks again. Every
instance is busy all the time, so instance-seconds = workers x clock. A configuration's final
value is its value after ``max_epochs``; only those count as found (a stopped run's early value
is not a result). The optimizers' own compute time does not advance the clock.

Methods (``METHODS``): optfleet's engine (``quality_methods.optfleet_suggester``, in-process
through the ``Suggester`` protocol, as the server calls it) with no stopping, with the server's
ASHA and with its median rule (the domain functions the checkpoint service calls:
``rung_reached``, ``rule_decision``, ``decide``, with the policy the server stores for
``{"early_stopping": {"rule": ...}}``, all defaults); a stopped run is observed with
``stopped_at_step``, as the server's rows carry it. Optuna 5's TPE (the engine's settings:
multivariate, constant liar) with no pruner, ``HyperbandPruner`` and ``MedianPruner``
(defaults but ``min_resource=1, max_resource=max_epochs, reduction_factor=3``) on an in-memory
study, ``trial.report``/``should_prune`` after each epoch.
"""

from __future__ import annotations

import functools
import heapq
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import optuna

from benchmarks.lc_problems import Assignments, LCProblem
from benchmarks.quality_methods import METRIC, OptfleetOptimizer, distribution_of
from suggestion_server.domain.early_stopping import (
    StoppingPolicy,
    best_of,
    decide,
    rule_decision,
    rung_reached,
)
from suggestion_server.domain.training_monitor import stopping_policy, validated_training_monitor
from suggestion_server.wire.training_monitor import EarlyStoppingIn, TrainingMonitorIn

optuna.logging.set_verbosity(optuna.logging.ERROR)
JITTER = (0.9, 1.1)


class Method(Protocol):
    """One optimization run with a stopping rule."""

    def ask(self) -> tuple[int, Assignments]: ...

    def report(self, handle: int, step: int, value: float) -> bool:
        """Record the run's value after ``step``; True: stop it now."""
        ...

    def tell(self, handle: int, value: float, stopped_at: int | None) -> None: ...


# --- optfleet ----------------------------------------------------------------------------------


def server_policy(rule: str, max_epochs: int) -> StoppingPolicy:
    """The policy the server resolves for ``{"max_checkpoints": max_epochs, "early_stopping":
    {"rule": rule}}`` on an experiment minimizing one metric."""
    metrics = [{"name": METRIC, "objective": "minimize", "strategy": "optimize"}]
    body = TrainingMonitorIn(
        max_checkpoints=max_epochs,
        early_stopping=EarlyStoppingIn(rule=rule),  # type: ignore[arg-type]
    )
    policy = stopping_policy(validated_training_monitor(body, metrics), metrics)
    assert policy is not None
    return policy


@dataclass
class _Run:
    curve: list[float] = field(default_factory=list)
    rung_step: int | None = None
    reason: str | None = None


class OptfleetMethod(OptfleetOptimizer):
    """The server's engine, and the server's stopping rule (None: no stopping)."""

    def __init__(
        self,
        problem: LCProblem,
        seed: int,
        rule: str | None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        from suggestion_server.optimizer.gp import proposer, safeguards

        # The proposer builds its settings from this name; every run sets it (a development
        # variant's ``settings`` must not leak into the next run in the same process).
        proposer.ProposerSettings = functools.partial(  # type: ignore[misc]
            safeguards.ProposerSettings, **(settings or {})
        )
        super().__init__(problem, seed)  # type: ignore[arg-type]  # parameters, conditionals
        self._policy = server_policy(rule, problem.max_epochs) if rule else None
        self._runs: dict[int, _Run] = {}
        self._rung_values: defaultdict[int, list[float]] = defaultdict(list)

    def ask(self) -> tuple[int, Assignments]:
        sid, assignments = super().ask()
        self._runs[sid] = _Run()
        return sid, assignments

    def report(self, handle: int, step: int, value: float) -> bool:
        """What services/checkpoints.py decides for this checkpoint."""
        policy, run = self._policy, self._runs[handle]
        if policy is None:
            return False
        rung_decision = None
        rung = rung_reached(step, policy.grace_step, policy.reduction_factor)
        if (
            run.reason is None
            and rung is not None
            and (run.rung_step is None or rung > run.rung_step)
        ):
            others = list(self._rung_values[rung])
            self._rung_values[rung].append(value)
            run.rung_step = rung
            rung_decision = rule_decision(
                policy,
                step=step,
                rung_step=rung,
                value=value,
                best_so_far=best_of([*run.curve, value], maximize=False),
                others=others,
            )
        run.curve.append(value)
        decision = decide(
            policy,
            checkpoint_count=len(run.curve),
            curves={},
            rung=rung_decision,
            earlier_reason=run.reason,
        )
        if decision.reason is not None and run.reason is None:
            run.reason = decision.reason
        return decision.should_stop

    def tell(self, handle: int, value: float, stopped_at: int | None = None) -> None:  # type: ignore[override]
        reason = self._runs.pop(handle).reason
        super().tell(handle, value)
        # As the server's rows: stopped only when the rule stopped it (not max_checkpoints).
        if stopped_at is not None and reason is not None and "_rung_" in reason:
            rows = self._rows.observations
            rows[-1] = replace(rows[-1], stopped_at_step=stopped_at)


# --- Optuna ------------------------------------------------------------------------------------


class OptunaMethod:
    """Optuna's TPE with a pruner on an in-memory study (open trials stay RUNNING)."""

    def __init__(
        self, problem: LCProblem, seed: int, pruner: optuna.pruners.BasePruner | None
    ) -> None:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        self._study = optuna.create_study(
            direction="minimize", sampler=sampler, pruner=pruner or optuna.pruners.NopPruner()
        )
        self._distributions = {p.name: distribution_of(p) for p in problem.parameters}
        self._trials: dict[int, optuna.Trial] = {}

    def ask(self) -> tuple[int, Assignments]:
        trial = self._study.ask(dict(self._distributions))
        self._trials[trial.number] = trial
        return trial.number, dict(trial.params)

    def report(self, handle: int, step: int, value: float) -> bool:
        trial = self._trials[handle]
        trial.report(value, step)
        return trial.should_prune()

    def tell(self, handle: int, value: float, stopped_at: int | None) -> None:
        trial = self._trials.pop(handle)
        if stopped_at is None:
            self._study.tell(trial, value)
        else:
            self._study.tell(trial, state=optuna.trial.TrialState.PRUNED)


MethodFactory = Callable[[LCProblem, int], Method]


def _hyperband(problem: LCProblem) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=problem.max_epochs, reduction_factor=3
    )


METHODS: dict[str, tuple[str, MethodFactory]] = {
    "optfleet": ("optfleet, no stopping", lambda p, s: OptfleetMethod(p, s, None)),
    "optfleet_asha": ("optfleet + ASHA", lambda p, s: OptfleetMethod(p, s, "asha")),
    "optfleet_median": ("optfleet + median rule", lambda p, s: OptfleetMethod(p, s, "median")),
    "tpe": ("Optuna TPE, no pruner", lambda p, s: OptunaMethod(p, s, None)),
    "tpe_hyperband": (
        "Optuna TPE + HyperbandPruner",
        lambda p, s: OptunaMethod(p, s, _hyperband(p)),
    ),
    "tpe_median": (
        "Optuna TPE + MedianPruner",
        lambda p, s: OptunaMethod(p, s, optuna.pruners.MedianPruner()),
    ),
}

# Development only (with lc_problems.DEV_PROBLEMS): the engine's treatment of stopped runs,
# ``ProposerSettings.stopped_values`` (gp/proposer.py's ``modelled_values``): "ranked", by their
# rank among the runs stopped at the same step between the median and the worst full-length
# value, or "worst", at the worse of their own value and the worst full-length value.
DEV_METHODS: dict[str, tuple[str, MethodFactory]] = {
    f"optfleet_{rule}_{values}": (
        f"optfleet + {rule}, stopped runs {values}",
        functools.partial(
            lambda p, s, rule, values: OptfleetMethod(p, s, rule, {"stopped_values": values}),
            rule=rule,
            values=values,
        ),
    )
    for rule in ("asha", "median")
    for values in ("ranked", "worst")
}
ALL_METHODS = {**METHODS, **DEV_METHODS}


# --- the fleet ---------------------------------------------------------------------------------


@dataclass
class LCRun:
    """What one (problem, method, seed) run found: ``finals`` as (instance-seconds when the
    run finished, its final value), in that order."""

    problem: str
    method: str
    seed: int
    budget: float
    finals: list[tuple[float, float]] = field(default_factory=list)
    trials: int = 0
    stopped: int = 0
    epochs: int = 0
    cpu_seconds: float = 0.0

    def best_at(self, instance_seconds: float) -> float:
        """The best final value found within ``instance_seconds`` (inf before any)."""
        values = [v for t, v in self.finals if t <= instance_seconds]
        return min(values) if values else float("inf")

    def seconds_to_reach(self, target: float) -> float:
        """Instance-seconds until a final value at or below ``target`` (inf: never)."""
        return next((t for t, v in self.finals if v <= target), float("inf"))


@dataclass
class _Worker:
    handle: int
    assignments: Assignments
    curve: object
    epoch: int = 0


def run_fleet(
    problem: LCProblem,
    method_name: str,
    seed: int,
    *,
    workers: int,
    budget: float,
) -> LCRun:
    """One run: ``workers`` asynchronous instances until ``budget`` instance-seconds."""
    started = time.process_time()
    method = ALL_METHODS[method_name][1](problem, seed)
    rng = random.Random(f"lc-{problem.name}-{seed}")
    result = LCRun(problem.name, method_name, seed, budget)
    end_clock = budget / workers
    events: list[tuple[float, int]] = []
    busy: dict[int, _Worker] = {}
    trial_number = 0

    def start(worker: int, now: float) -> None:
        nonlocal trial_number
        handle, assignments = method.ask()
        trial_number += 1
        curve = problem.start(assignments, seed * 100_003 + trial_number)
        busy[worker] = _Worker(handle, assignments, curve)
        result.trials += 1
        schedule(worker, now)

    def schedule(worker: int, now: float) -> None:
        seconds = problem.epoch_seconds(busy[worker].assignments) * rng.uniform(*JITTER)
        heapq.heappush(events, (now + seconds, worker))

    for worker in range(workers):
        start(worker, 0.0)
    while events:
        now, worker = heapq.heappop(events)
        if now > end_clock:
            break
        state = busy[worker]
        state.epoch += 1
        result.epochs += 1
        value = state.curve.next_value()  # type: ignore[attr-defined]
        stop = method.report(state.handle, state.epoch, value)
        last = state.epoch >= problem.max_epochs
        if not (stop or last):
            schedule(worker, now)
            continue
        if last:
            result.finals.append((now * workers, value))
            method.tell(state.handle, value, None)
        else:
            result.stopped += 1
            method.tell(state.handle, value, state.epoch)
        start(worker, now)
    result.cpu_seconds = time.process_time() - started
    return result
