"""One attempt at a suggestion: journal it, evaluate under supervision, journal the observation
body, report it. A result journaled before a crash is reported, never recomputed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict

from worker_bootstrap.adoption import HISTORY_KEY, lease_expiry
from worker_bootstrap.ai_runs import training_run_of
from worker_bootstrap.config import Settings
from worker_bootstrap.cost.attempt_spend import SpendTracker
from worker_bootstrap.evaluation import Task
from worker_bootstrap.instance import Instance
from worker_bootstrap.journal import CREATED, EVALUATED, Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.metadata import merged
from worker_bootstrap.reporting import ObservationReporter
from worker_bootstrap.results import Outcome
from worker_bootstrap.steps import AFTER_EVALUATION, StepHooks
from worker_bootstrap.supervision import EvaluationSupervisor

Json = Dict[str, Any]

# Suggestion metadata an observation repeats, so the hand-over history survives the suggestion.
HANDED_OVER_KEYS = ("adopted_by", "previous_instance_ids", HISTORY_KEY)


@dataclass(eq=False)
class AttemptRunner:
    """Evaluates a suggestion this instance holds and reports the result."""

    settings: Settings
    instance: Instance
    journal: Journal
    spend: SpendTracker
    supervisor: EvaluationSupervisor
    reporter: ObservationReporter
    log: EventLog
    hooks: StepHooks
    monotonic: Callable[[], float]

    def run(self, suggestion: Json, resumed: bool) -> None:
        """Evaluate ``suggestion`` (``resumed``: started before by this instance) and report."""
        with self.log.working_on_suggestion(str(suggestion["id"])):
            self._evaluate_then_report(suggestion, resumed)

    def _evaluate_then_report(self, suggestion: Json, resumed: bool) -> None:
        eid = self.settings.experiment_id
        sid = str(suggestion["id"])
        metadata = suggestion.get("metadata") or {}
        entry = self.journal.entry_for(eid, suggestion)
        if entry.stage == EVALUATED and entry.observation is not None:
            self.reporter.report(entry)  # computed before a crash: post it, never recompute
            return
        entry.stage = CREATED
        entry.attempts += 1
        entry.lease_expires_at = lease_expiry(suggestion, self.settings.lease_ttl_s)
        entry.previous_instance_ids = str(metadata.get("previous_instance_ids") or "")
        self.journal.save(entry)
        self.spend.begin(sid, metadata)
        previous = [p for p in entry.previous_instance_ids.split(",") if p]
        run_id = training_run_of(self.reporter.api, eid, sid)  # AI experiments only
        task = Task(
            experiment_id=eid,
            suggestion_id=sid,
            instance_id=self.instance.instance_id,
            assignments=dict(suggestion.get("assignments") or {}),
            checkpoint_dir=self.journal.checkpoint_dir(eid, sid),
            run_dir=self.journal.run_dir(eid, sid),
            resumed=resumed,
            attempt=entry.attempts + len(previous),
            run_id=run_id,
        )
        started = self.monotonic()
        outcome = self.supervisor.supervise(task, entry)
        if outcome is None:
            self.spend.end(sid)
            return
        duration = round(self.monotonic() - started, 3)
        agent_keys = self.instance.metadata()
        agent_keys.update(duration_s=duration, attempt=task.attempt, resumed=int(task.resumed))
        agent_keys.update(self.spend.observation_metadata(sid))
        entry.observation = observation_body(sid, outcome, agent_keys, metadata)
        self.spend.end(sid)
        entry.stage = EVALUATED
        entry.child_pid = None
        entry.child_start = None
        self.journal.save(entry)
        self.log.event(
            "evaluation_finished",
            sid,
            failed=outcome.failed,
            failure_reason=outcome.failure_reason,
            duration_s=duration,
        )
        self.hooks.reached(AFTER_EVALUATION)
        self.reporter.report(entry)


def observation_body(
    suggestion_id: str, outcome: Outcome, agent_keys: Json, suggestion_metadata: Json
) -> Json:
    """The observation to post: values or ``failed``, with the agent's metadata keys (which win
    over the evaluation's own) and the suggestion's hand-over history."""
    agent = dict(agent_keys)
    for key in HANDED_OVER_KEYS:
        if suggestion_metadata.get(key):
            agent[key] = suggestion_metadata[key]
    body: Json = {"suggestion": suggestion_id}
    if outcome.failed:
        agent["failure_reason"] = outcome.failure_reason
        body["failed"] = True
    else:
        body["values"] = outcome.values
    body["metadata"] = merged(agent, outcome.metadata)
    return body
