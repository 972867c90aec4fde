"""Checkpoints of training runs, each answered with its early-stopping decision.

The decision rides on the answer (no polling) and is stored with the checkpoint, so a re-post
of a stored step returns the same checkpoint and the same decision. Checkpoints of one run are
serialized by the run's row lock; a checkpoint that reaches a new rung of the cross-run rule
also takes the experiment's decision lock (``lock_stopping_decisions``), so several server
processes on one PostgreSQL decide as if one after another. Ordinary checkpoints take only the
run's lock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, cast

from suggestion_server.domain.early_stopping import (
    NEVER_STOP,
    Decision,
    RungDecision,
    StoppingPolicy,
    best_of,
    decide,
    is_better,
    rule_decision,
    rung_reached,
)
from suggestion_server.domain.metric_values import values_in_metric_order
from suggestion_server.domain.training_monitor import MAX_CHECKPOINTS, stopping_policy
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import checkpoint_json, pagination_json
from suggestion_server.storage.models import Checkpoint
from suggestion_server.storage.queries import dumps, loads, page_of
from suggestion_server.storage.training_runs import (
    CheckpointSql,
    RunForCheckpoint,
    StoredCheckpoint,
    checkpoint_of_run,
    run_for_client,
)
from suggestion_server.wire.errors import ApiError, bad_request
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.schemas import ValueIn
from suggestion_server.wire.training_runs import CheckpointCreate

log = logging.getLogger("suggestion_server.checkpoints")


def _deleted_experiment(run: RunForCheckpoint) -> ApiError:
    return bad_request(f"Cannot create checkpoints for deleted experiment {run.experiment_id}")


def _metrics_of_project_run(values: list[ValueIn]) -> list[dict[str, Any]]:
    """A project run has no experiment metrics: its checkpoint's own names, each required."""
    for index, entry in enumerate(values):
        if entry.name is None:
            raise bad_request(
                f'Missing required json key "values.{index}.name": a run outside an experiment '
                "has no metric to default to"
            )
    return [{"name": entry.name, "objective": "maximize", "strategy": "store"} for entry in values]


@lru_cache(maxsize=256)
def _experiment_rules(
    metrics_json: str, monitor_json: str | None
) -> tuple[list[dict[str, Any]], StoppingPolicy | None]:
    """An experiment's metrics and stopping policy, parsed once per distinct stored text.

    Keyed by the columns' text as read in this checkpoint's transaction, so an experiment
    update (another process's too) is a new key: the cache cannot serve a stale policy. The
    values are shared: read them, never change them."""
    metrics: list[dict[str, Any]] = json.loads(metrics_json)
    return metrics, stopping_policy(loads(monitor_json), metrics)


def _replayed(
    run: RunForCheckpoint, stored: StoredCheckpoint, values: list[dict[str, Any]]
) -> dict[str, Any]:
    """A re-post of a stored step: the stored checkpoint and decision, or a 409."""
    if json.loads(stored.values_json) == values:
        return _answer(stored)
    raise ApiError(
        409,
        f"Training run {run.id} already has checkpoint {stored.id} at step {stored.step} with "
        f"different values; post a step after the last one ({run.last_step})",
    )


def _check_accepting(run: RunForCheckpoint, policy: StoppingPolicy | None, step: int) -> None:
    """403 once the run is closed or full; 400 for a step that does not move forward."""
    if run.observation_id is not None:
        raise ApiError(
            403,
            f"Training run {run.id} is closed: observation {run.observation_id} reports its "
            "suggestion, so it takes no more checkpoints",
        )
    limit = MAX_CHECKPOINTS if policy is None else policy.max_checkpoints
    if run.checkpoint_count >= limit:
        raise ApiError(
            403,
            f"Training run {run.id} already has {run.checkpoint_count} checkpoints, the most "
            f"its experiment's max_checkpoints ({limit}) allows",
        )
    if run.last_step is not None and step <= run.last_step:
        raise bad_request(
            f"Invalid step for training run {run.id}: {step} - non-monotonic step, expected a "
            f"step after the last one ({run.last_step})"
        )


def _curve_metrics(
    policy: StoppingPolicy | None, checkpoint_count: int, at_rung: bool
) -> set[str | None]:
    """The metrics whose curves this checkpoint's decision reads (often none: no read)."""
    if policy is None:
        return set()
    wanted = {
        c.metric
        for c in policy.criteria
        if checkpoint_count >= c.min_checkpoints and checkpoint_count > c.lookback_checkpoints
    }
    if at_rung and policy.rule == "median":
        wanted.add(policy.metric)
    return wanted


def _new_rung(
    policy: StoppingPolicy | None, run: RunForCheckpoint, step: int, values: dict[str | None, float]
) -> int | None:
    """The rung this checkpoint reaches first for the run, if it is a decision point of the
    cross-run rule (a run already told to stop reaches no more rungs). Only such a checkpoint
    takes the experiment's decision lock and reads other runs' values: every other one is
    decided from its own run's row (and curve, for SigOpt's criteria)."""
    if policy is None or policy.rule == "none" or run.stopping_reason is not None:
        return None
    if policy.metric not in values:
        return None
    rung = rung_reached(step, policy.grace_step, policy.reduction_factor)
    if rung is None or (run.rung_step is not None and rung <= run.rung_step):
        return None
    return rung


def _decided_at_rung(
    sql: CheckpointSql,
    policy: StoppingPolicy,
    run: RunForCheckpoint,
    *,
    experiment_id: int,
    step: int,
    rung: int,
    value: float,
    curve: list[float],
) -> RungDecision:
    """Record the run's value at ``rung`` and decide, under the experiment's decision lock:
    the values read are exactly those recorded before this one (no cache: with several
    processes, any value another one recorded must count, or two runs could both be kept)."""
    sql.lock_decisions(experiment_id)
    others = sql.rung_values(experiment_id, rung)
    sql.record_rung_value(experiment_id, rung, run.id, value)
    run.rung_step = rung
    best = best_of([*curve, value], policy.is_maximized(policy.metric))
    return rule_decision(
        policy, step=step, rung_step=rung, value=value, best_so_far=best, others=others
    )


def _decision(
    sql: CheckpointSql,
    policy: StoppingPolicy | None,
    run: RunForCheckpoint,
    experiment_id: int,
    step: int,
    values: dict[str | None, float],
) -> Decision:
    """The answer to the run's next checkpoint at ``step`` with ``values``; a new rung's value
    is recorded on the way. Reads the run's curves only when a rule needs them."""
    count = run.checkpoint_count + 1
    rung = _new_rung(policy, run, step, values)
    prior = sql.curves(run.id, _curve_metrics(policy, count, rung is not None))
    rung_decision = None
    if policy is not None and rung is not None:
        rung_decision = _decided_at_rung(
            sql,
            policy,
            run,
            experiment_id=experiment_id,
            step=step,
            rung=rung,
            value=values[policy.metric],
            curve=prior.get(policy.metric, []),
        )
    curves = {name: [*curve, values[name]] for name, curve in prior.items() if name in values}
    return decide(
        policy,
        checkpoint_count=count,
        curves=curves,
        rung=rung_decision,
        earlier_reason=run.stopping_reason,
    )


def _tracked_value(
    policy: StoppingPolicy | None, metrics: list[dict[str, Any]], values: dict[str | None, float]
) -> tuple[float, bool] | None:
    """(value, maximize) of the metric ``best_checkpoint`` follows (the rule's, else the first
    optimized one), or None when this checkpoint has no value of it."""
    if policy is not None:
        name = policy.metric
    else:
        name = next(m["name"] for m in metrics if m["strategy"] == "optimize")
    if name not in values:
        return None
    maximize = next(m["objective"] == "maximize" for m in metrics if m["name"] == name)
    return values[name], maximize


def _advance(
    run: RunForCheckpoint, step: int, decision: Decision, tracked: tuple[float, bool] | None
) -> bool:
    """The run after its checkpoint at ``step``: counts, last step, best value, the first
    stop. Whether the checkpoint is the run's new best one."""
    run.checkpoint_count += 1
    run.last_step = step
    new_best = False
    if tracked is not None:
        value, maximize = tracked
        if run.best_value is None or is_better(value, run.best_value, maximize):
            run.best_value = value
            new_best = True
    if decision.reason is not None and run.stopping_reason is None:
        run.stopped_at_step = step
        run.stopping_reason = decision.reason
    return new_best


def _answer(stored: StoredCheckpoint) -> dict[str, Any]:
    # StoredCheckpoint has the Checkpoint row's attribute names, all checkpoint_json reads.
    return checkpoint_json(cast(Checkpoint, stored))


@dataclass(frozen=True)
class CheckpointPost:
    """One checkpoint request: the client's run (of ``experiment_id`` when the path names one)
    and the validated body."""

    client_id: int
    run_id: int
    body: CheckpointCreate
    experiment_id: int | None = None


def create_checkpoint(
    ctx: ServerContext,
    client_id: int,
    run_id: int,
    body: CheckpointCreate,
    experiment_id: int | None = None,
) -> dict[str, Any]:
    """Store a checkpoint and answer it with ``should_stop`` (docs/api.md, "Training runs and
    early stopping")."""
    (result,) = create_checkpoints(ctx, [CheckpointPost(client_id, run_id, body, experiment_id)])
    if isinstance(result, ApiError):
        raise result
    return result


def create_checkpoints(
    ctx: ServerContext, posts: Sequence[CheckpointPost]
) -> list[dict[str, Any] | ApiError]:
    """Several checkpoints in one write transaction (group commit), each answered as if alone:
    its checkpoint, or the ``ApiError`` refusing it (raised before it wrote anything, so a
    refused post never disturbs the others). Posts are taken in order, so a second post of the
    same run sees the first (a re-post of its step is a replay).

    PostgreSQL: the runs' row locks are taken first, all at once in id order, and the
    experiment's decision lock only after them, as a single checkpoint does: two processes'
    transactions then wait for each other's rows in one order and never deadlock. Rung values
    read under the decision lock are remembered until the transaction ends (nobody else can
    record one meanwhile) and this batch's own are stored just before it commits."""
    results: list[dict[str, Any] | ApiError] = []
    with ctx.store.write() as session:
        sql = CheckpointSql(session)
        sql.lock_runs([post.run_id for post in posts])
        for post in posts:
            try:
                results.append(_create_one(ctx, sql, post))
            except ApiError as exc:
                results.append(exc)
        sql.finish()
    return results


def _create_one(ctx: ServerContext, sql: CheckpointSql, post: CheckpointPost) -> dict[str, Any]:
    """One checkpoint in the batch's transaction: the run's row (locked) with its experiment's
    columns, the checkpoint's insert and the run's update; a rung checkpoint adds the decision
    lock, the rung's values and its own. A re-post of a stored step reads that checkpoint."""
    body = post.body
    if not body.values:
        raise bad_request("Invalid value for values: [] - expected at least one metric evaluation")
    run = sql.run(post.client_id, post.run_id, post.experiment_id)
    if run.experiment_state == "deleted":
        raise _deleted_experiment(run)
    experiment_id = run.experiment_id
    if experiment_id is None or run.metrics_json is None:  # a project run
        experiment_id, metrics, policy = None, _metrics_of_project_run(body.values), None
    else:
        metrics, policy = _experiment_rules(run.metrics_json, run.monitor_json)
    values = values_in_metric_order(metrics, body.values)
    step = body.step if body.step is not None else (run.last_step or 0) + 1
    # Steps only move forward, so a stored checkpoint at ``step`` needs step <= last step.
    if run.last_step is not None and step <= run.last_step:
        stored = sql.at_step(run.id, step)
        if stored is not None:
            return _replayed(run, stored, values)
    _check_accepting(run, policy, step)
    by_name = {v["name"]: float(v["value"]) for v in values}
    # No early-stopping decision without an experiment: nothing to compare the run with.
    decision = (
        NEVER_STOP
        if experiment_id is None
        else _decision(sql, policy, run, experiment_id, step, by_name)
    )
    tracked = None if experiment_id is None else _tracked_value(policy, metrics, by_name)
    draft = StoredCheckpoint(
        id=0,  # given by the insert
        training_run_id=run.id,
        created=ctx.now(),
        step=step,
        values_json=dumps(values) or "[]",
        metadata_json=dumps(body.metadata),
        should_stop=decision.should_stop,
        stopping_reasons_json=dumps(decision.stopping_reasons) or "{}",
    )
    new_best = _advance(run, step, decision, tracked)
    checkpoint = replace(draft, id=sql.insert(run, draft, new_best))
    if decision.reason is not None:
        log.info(
            "training run stopped experiment=%s training_run=%s step=%s reason=%s",
            run.experiment_id,
            run.id,
            step,
            decision.reason,
        )
    return _answer(checkpoint)


def list_checkpoints(
    ctx: ServerContext,
    client_id: int,
    run_id: int,
    req: PageRequest,
    experiment_id: int | None = None,
) -> dict[str, Any]:
    """A page of the run's checkpoints, newest first."""
    with ctx.store.read() as session:
        run = run_for_client(session, client_id, run_id, experiment_id=experiment_id)
        page = page_of(session, Checkpoint, [Checkpoint.training_run_id == run.id], req)
        return pagination_json(page, [checkpoint_json(c) for c in page.rows])


def fetch_checkpoint(
    ctx: ServerContext,
    client_id: int,
    run_id: int,
    checkpoint_id: int,
    experiment_id: int | None = None,
) -> dict[str, Any]:
    """One checkpoint of the run."""
    with ctx.store.read() as session:
        run = run_for_client(session, client_id, run_id, experiment_id=experiment_id)
        return checkpoint_json(checkpoint_of_run(session, run.id, checkpoint_id))
