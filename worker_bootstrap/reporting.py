"""Reporting an observation exactly once from the journal (docs/agent.md, "Crash safety").

The core API has no idempotency key: after an ambiguous POST the suggestion is read, and
``closed`` means the observation landed. Only the suggestion's current owner posts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict

from worker_bootstrap.adoption import Claimer
from worker_bootstrap.api_client import AmbiguousRequest, ApiClient, ApiError, ApiUnavailable
from worker_bootstrap.config import Settings
from worker_bootstrap.experiment_status import ExperimentStatus
from worker_bootstrap.journal import REPORTED, Entry, Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.metadata import merged
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.steps import AFTER_REPORT, StepHooks

Json = Dict[str, Any]


@dataclass(eq=False)
class ObservationReporter:
    """Posts journaled observations, then forgets their suggestions."""

    api: ApiClient
    settings: Settings
    journal: Journal
    claimer: Claimer
    experiment: ExperimentStatus
    summary: RunSummary
    log: EventLog
    hooks: StepHooks
    clock: Callable[[], float]

    @property
    def experiment_id(self) -> str:
        return self.settings.experiment_id

    def report(self, entry: Entry, force_check: bool = False) -> None:
        """Post the journaled observation exactly once, then forget the suggestion.

        ``force_check``: read the suggestion first even when this instance's lease is fresh
        (a result computed before a crash)."""
        with self.log.working_on_suggestion(entry.suggestion_id):
            self._post_observation(entry, force_check)

    def _post_observation(self, entry: Entry, force_check: bool) -> None:
        sid = entry.suggestion_id
        body = dict(entry.observation or {})
        lease_ok = self.clock() < entry.lease_expires_at - self.settings.settle_s
        # Someone may have adopted it meanwhile: only the current owner posts.
        if (force_check or entry.claim_nonce or not lease_ok) and not self._still_mine(entry):
            self.log.event("result_dropped", sid, reason="suggestion closed or taken over")
            self.summary.dropped += 1
            self.journal.forget(self.experiment_id, sid)
            return
        attempts = self.settings.http_attempts
        for attempt in range(attempts):
            try:
                self.api.create_observation(self.experiment_id, body)
                break
            except AmbiguousRequest as exc:
                state = self._suggestion_state(sid)
                self.log.event("observation_ambiguous", sid, error=exc.cause, state=state)
                if state != "open":
                    break  # it landed (or the suggestion is gone): never post twice
                self.api.backoff.wait(attempt)
            except ApiError as exc:
                if exc.status in (400, 404) and self.experiment.deleted_now():
                    self.log.event("experiment_deleted", sid, error=exc.message)
                    self.journal.forget(self.experiment_id, sid)
                    return
                state = self._suggestion_state(sid)
                if state != "open":
                    self.log.event(
                        "observation_rejected_closed", sid, status=exc.status, state=state
                    )
                    break
                if exc.status in (400, 409, 422) and not body.get("failed"):
                    # The server refuses the values (e.g. metric names): report why instead.
                    body = _rejected(sid, exc.message, body)
                    entry.observation = body
                    self.journal.save(entry)
                    self.log.event(
                        "observation_rejected", sid, status=exc.status, error=exc.message
                    )
                    continue
                raise
        else:
            raise ApiUnavailable(
                f"reporting the observation for suggestion {sid} failed "
                f"{attempts} times; it stays journaled for the next start"
            )
        self.hooks.reached(AFTER_REPORT)
        self.experiment.progress_changed()
        entry.stage = REPORTED
        self.journal.save(entry)
        self.journal.forget(self.experiment_id, sid)
        self._count(sid, body)

    def _count(self, sid: str, body: Json) -> None:
        self.summary.evaluations += 1
        self.summary.suggestion_ids.append(sid)
        if body.get("failed"):
            self.summary.failures += 1
        self.log.event(
            "observation_reported",
            sid,
            failed=bool(body.get("failed")),
            failure_reason=(body.get("metadata") or {}).get("failure_reason"),
        )

    def _suggestion_state(self, sid: str) -> str:
        try:
            return str(self.api.suggestion(self.experiment_id, sid).get("state"))
        except ApiError as exc:
            if exc.status == 404:
                return "gone"
            raise

    def _still_mine(self, entry: Entry) -> bool:
        try:
            return self.claimer.still_mine(entry.suggestion_id, entry.claim_nonce)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise


def _rejected(sid: str, message: str, body: Json) -> Json:
    """A failed observation in place of values the server refused, its metadata kept."""
    return {
        "suggestion": sid,
        "failed": True,
        "metadata": merged(
            {"failure_reason": f"server rejected the result: {message}"}, body.get("metadata")
        ),
    }
