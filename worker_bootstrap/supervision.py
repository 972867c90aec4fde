"""Supervising one running evaluation: the lease kept fresh, spot notices and stop signals obeyed
(SIGTERM, a grace period, then SIGKILL), its progress forwarded and the server's early stop obeyed
the same way, the time limit enforced; its checkpoint restored from the latest snapshot before it
starts and snapshotted while it runs and when it is left open (snapshots/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from worker_bootstrap.config import Settings
from worker_bootstrap.evaluation import Evaluator, Running, Task, process_start_time
from worker_bootstrap.journal import Entry, Journal
from worker_bootstrap.lease import LeaseKeeper
from worker_bootstrap.logs import EventLog
from worker_bootstrap.progress_forwarding import Forwarding, ProgressForwarder, StopDecision
from worker_bootstrap.results import Outcome, result_in
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.snapshots.restore import SnapshotRestorer
from worker_bootstrap.snapshots.uploads import AttemptUploads, SnapshotUploads
from worker_bootstrap.spot import SpotWatch
from worker_bootstrap.steps import StepHooks
from worker_bootstrap.stop_flags import StopFlags

# Time from a spot notice to the instance's end, and from systemd's SIGTERM to its SIGKILL
# (TimeoutStopSec, install.py), less a margin: the last snapshot must be in S3 before either.
SPOT_NOTICE_S = 120.0
STOP_TIMEOUT_S = 90.0
_MARGIN_S = 10.0


@dataclass(eq=False)
class EvaluationSupervisor:
    """Starts an evaluation and watches it until it yields an outcome or must be left."""

    evaluator: Evaluator
    settings: Settings
    journal: Journal
    lease: LeaseKeeper
    spot: SpotWatch
    progress: ProgressForwarder
    stop: StopFlags
    summary: RunSummary
    log: EventLog
    hooks: StepHooks
    monotonic: Callable[[], float]
    restorer: SnapshotRestorer
    uploads: SnapshotUploads

    def supervise(self, task: Task, entry: Entry) -> Optional[Outcome]:
        """The evaluation's outcome (a failure on timeout; the last progress values when the
        server stopped its run); None when the suggestion is left open (stop signal, spot
        notice) or is no longer ours."""
        forwarding = self.progress.forwarding(task, entry)
        try:
            standing = forwarding.standing_stop()
            if standing is not None:
                # Stopped before a crash or by the previous owner: nothing more to evaluate.
                self.log.event(
                    "evaluation_skipped",
                    task.suggestion_id,
                    reason="early_stop",
                    **standing.fields(),
                )
                return self._stopped_early(forwarding, standing, before=None, after=None)
            return self._run(task, entry, forwarding)
        finally:
            forwarding.close()

    def _run(self, task: Task, entry: Entry, forwarding: Forwarding) -> Optional[Outcome]:
        restored = self.restorer.restore(task)
        # Hand-overs so far: a later owner's snapshot is never replaced by an earlier one's.
        generation = len([p for p in entry.previous_instance_ids.split(",") if p])
        uploads = self.uploads.attempt(task, generation)
        try:
            outcome = self._start(task, entry, forwarding, uploads)
        finally:
            uploads.close()
        if outcome is not None and restored:
            outcome.metadata = {**outcome.metadata, **restored}
        return outcome

    def _start(
        self, task: Task, entry: Entry, forwarding: Forwarding, uploads: AttemptUploads
    ) -> Optional[Outcome]:
        running = self.evaluator.start(task)
        if running.pid:
            # Recorded so a restart can kill a group that outlived a crashed agent.
            entry.child_pid = running.pid
            entry.child_start = process_start_time(running.pid)
            self.journal.save(entry)
        self.log.event(
            "evaluation_started",
            task.suggestion_id,
            resumed=int(task.resumed),
            attempt=task.attempt,
            checkpoint_dir=str(task.checkpoint_dir),
            pid=running.pid,
        )
        self.hooks.evaluation_started(running, task)
        return self._watch(running, task, entry, forwarding, uploads)

    def _watch(
        self,
        running: Running,
        task: Task,
        entry: Entry,
        forwarding: Forwarding,
        uploads: AttemptUploads,
    ) -> Optional[Outcome]:
        settings = self.settings
        start = self.monotonic()
        deadline = start + settings.timeout_s
        next_spot = start + settings.spot_poll_s
        renew_every = settings.lease_ttl_s / 3
        next_lease = start + renew_every
        tick = max(0.01, min(0.5, settings.spot_poll_s, renew_every, settings.progress_poll_s))
        while True:
            outcome = running.wait(tick)
            if outcome is not None:
                forwarding.drain()
                return outcome
            now = self.monotonic()
            if self.stop.stop_requested():
                return self._leave_open(running, task, uploads, "agent_stopping")
            if now >= next_spot:
                next_spot = now + settings.spot_poll_s
                if self.spot.notice():
                    return self._leave_open(
                        running, task, uploads, "spot_interruption", record_interrupt=True
                    )
            decision = forwarding.poll()
            if decision is not None:
                return self._stop_early(running, task, forwarding, decision)
            if now >= next_lease:
                next_lease = now + renew_every
                if not self.lease.renew(entry):
                    self._drop_lost(running, task)
                    return None
            # After the lease check: an owner back from a stall learns it lost the suggestion first.
            uploads.poll()
            if now >= deadline:
                self._finish(running)
                self.log.event(
                    "evaluation_timed_out", task.suggestion_id, timeout_s=settings.timeout_s
                )
                return Outcome(
                    failure_reason=f"evaluation timed out after {settings.timeout_s:g} s",
                    metadata={"timeout_s": settings.timeout_s},
                )

    def _finish(self, running: Running) -> Optional[Outcome]:
        running.terminate()
        outcome = running.wait(self.settings.grace_s)
        if outcome is None:
            running.kill()
            running.wait(5.0)
        return outcome

    def _stop_early(
        self, running: Running, task: Task, forwarding: Forwarding, decision: StopDecision
    ) -> Outcome:
        """The server stopped the run: stop the evaluation as for a spot notice; its result file
        wins if it was written before the stop, else the last progress values are the result."""
        self.log.event(
            "evaluation_stopping",
            task.suggestion_id,
            reason="early_stop",
            grace_s=self.settings.grace_s,
            **decision.fields(),
        )
        before = result_in(task.result_file)
        after = self._finish(running)
        return self._stopped_early(forwarding, decision, before, after)

    def _stopped_early(
        self,
        forwarding: Forwarding,
        decision: StopDecision,
        before: Optional[Outcome],
        after: Optional[Outcome],
    ) -> Outcome:
        outcome = forwarding.outcome_after_stop(decision, before, after)
        if before is None:
            self.summary.stopped_early += 1
        return outcome

    def _leave_open(
        self,
        running: Running,
        task: Task,
        uploads: AttemptUploads,
        why: str,
        record_interrupt: bool = False,
    ) -> Optional[Outcome]:
        self.log.event(
            "evaluation_stopping", task.suggestion_id, reason=why, grace_s=self.settings.grace_s
        )
        outcome = self._finish(running)
        if outcome is not None and not outcome.failed:
            return outcome  # it finished within the grace period: report the real result
        # Its SIGTERM handler has had its say: the checkpoint it marked goes up before the
        # suggestion is offered to others (interrupted_at), so the adopter finds it.
        window = SPOT_NOTICE_S if record_interrupt else STOP_TIMEOUT_S
        clean_exit = outcome is not None and "signal" not in outcome.metadata
        uploads.final(clean_exit, max(5.0, window - self.settings.grace_s - _MARGIN_S))
        if record_interrupt:
            self.lease.record_interrupted(task.suggestion_id)
        self.log.event("suggestion_left_open", task.suggestion_id, reason=why)
        return None

    def _drop_lost(self, running: Running, task: Task) -> None:
        """Someone else owns the suggestion now: stop at once and forget it."""
        running.kill()
        running.wait(self.settings.grace_s)
        self.log.event("ownership_lost", task.suggestion_id)
        self.journal.forget(task.experiment_id, task.suggestion_id)
        self.summary.dropped += 1
