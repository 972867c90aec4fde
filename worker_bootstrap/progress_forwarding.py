"""An evaluation's progress lines forwarded as checkpoints of its suggestion's training run, and
the server's decision to stop it (docs/agent.md, "Progress and early stopping").

The supervision loop calls :meth:`Forwarding.poll` a few times a second: it reads the lines
completed since its last look, posts each as a checkpoint at its step (in order, one at a time)
and returns the stop decision once a checkpoint's answer says ``should_stop``. The run is
created lazily, at the first line, so an evaluation that reports no progress costs no call.

Crash safety: every acknowledged checkpoint journals its step and the file offset past its line,
and a decided stop is journaled before the evaluation is told; a restart reads on from that
offset. A checkpoint the server stored whose answer was lost (a crash in between) is found by
reading the run's newest checkpoint when the run is opened again, so no line is posted twice;
an adopter on another instance continues above the run's newest step the same way.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Optional, Set

from worker_bootstrap.api_client import ApiUnavailable
from worker_bootstrap.evaluation import Task
from worker_bootstrap.journal import Entry, Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.progress import (
    NON_MONOTONIC,
    BadLine,
    ProgressLine,
    ProgressTail,
    end_torn_line,
    last_valid_line,
    parse_raw,
    write_stop_file,
)
from worker_bootstrap.progress_keys import (
    STOPPED_AT_STEP,
    STOPPED_EARLY,
    STOPPING_REASON,
    VALUES_AT_STEP,
)
from worker_bootstrap.results import Outcome
from worker_bootstrap.steps import AFTER_CHECKPOINT_POST, StepHooks
from worker_bootstrap.training_runs import Answer, Refused, TrainingRuns, reason_of

Json = Dict[str, Any]


@dataclass(frozen=True)
class StopDecision:
    """The server told the run to stop at ``step`` for ``reason``."""

    step: int
    reason: str

    def fields(self) -> Json:
        """The decision as fields of a log line (named like the observation's keys)."""
        return {STOPPED_AT_STEP: self.step, STOPPING_REASON: self.reason}


@dataclass(eq=False)
class ProgressForwarder:
    """Gives each attempt its :class:`Forwarding`; ``identity`` is the instance's metadata
    stamp, written on the training runs it creates."""

    runs: TrainingRuns
    journal: Journal
    identity: Callable[[], Json]
    log: EventLog
    hooks: StepHooks

    def forwarding(self, task: Task, entry: Entry) -> Forwarding:
        """The forwarding of one attempt at ``task`` (``entry``: its journal record)."""
        return Forwarding(self, task, entry)


class Forwarding:
    """One attempt's progress: lines read and forwarded in step order, and the stop decision."""

    def __init__(self, forwarder: ProgressForwarder, task: Task, entry: Entry) -> None:
        self.runs = forwarder.runs
        self.journal = forwarder.journal
        self.identity = forwarder.identity
        self.log = forwarder.log
        self.hooks = forwarder.hooks
        self.task = task
        self.entry = entry
        self.tail = ProgressTail(task.progress_file, entry.progress_offset)
        # Lines at or below it were acknowledged before (an earlier attempt here, or the
        # suggestion's previous instance): skipped quietly, not refused.
        self.floor: Optional[int] = entry.progress_step
        self.last_step: Optional[int] = None  # this attempt's last line in order
        self.pending: Deque[ProgressLine] = deque()
        self.run_id: Optional[str] = entry.training_run_id
        self.opened = False
        self.off = False  # nothing more to forward in this attempt
        self.finished = False  # the evaluation ended by itself: its result stands
        self.server_last: Optional[ProgressLine] = None
        self.decision: Optional[StopDecision] = None
        self.counts: Counter[str] = Counter()
        self._logged: Set[str] = set()

    @property
    def sid(self) -> str:
        return self.task.suggestion_id

    def standing_stop(self) -> Optional[StopDecision]:
        """A stop decided before this attempt (journaled, or answered to a checkpoint whose
        answer a crash lost): the evaluation need not start again. Called before it starts."""
        entry = self.entry
        end_torn_line(self.task.progress_file)
        if entry.stopped_at_step is not None:
            self.decision = StopDecision(entry.stopped_at_step, entry.stopping_reason or "")
        elif self.run_id is not None:
            self._open()
        if self.decision is None:
            self.task.stop_file.unlink(missing_ok=True)
        return self.decision

    def poll(self) -> Optional[StopDecision]:
        """Forward the lines completed since the last look; the decision once there is one."""
        if self.decision is None and not self.off and self.runs.supported:
            self._read(final=False)
            self._forward()
        return self.decision

    def drain(self) -> None:
        """The evaluation ended by itself: forward its last lines (the run's record), without
        stopping anything (its result stands)."""
        self.finished = True
        if self.decision is None and not self.off and self.runs.supported:
            self._read(final=True)
            self._forward()

    def close(self) -> None:
        """Log what this attempt forwarded (when it reported any progress)."""
        if self.counts or self.run_id is not None:
            self.log.event(
                "progress_summary",
                self.sid,
                training_run=self.run_id,
                forwarded=self.counts["forwarded"],
                skipped=self.counts["skipped"],
                rejected={k: n for k, n in self.counts.items() if k not in _NOT_REJECTED},
                last_step=self.entry.progress_step,
            )

    def outcome_after_stop(
        self, decision: StopDecision, before: Optional[Outcome], after: Optional[Outcome]
    ) -> Outcome:
        """The observation of a stopped run. ``before``: a valid result file already written when
        the stop came (it wins: the evaluation had finished); ``after``: how the evaluation
        ended once told to stop. Else the last reported progress values, with the stop keys."""
        if before is not None:
            self.log.event("result_written_before_stop", self.sid, failed=before.failed)
            return before
        keys: Json = {STOPPED_EARLY: 1, **decision.fields()}
        if after is not None and not after.failed:
            return Outcome(values=after.values, metadata={**after.metadata, **keys})
        last = self.last_reported()
        if last is None:
            return Outcome(
                failure_reason=f"training run stopped at step {decision.step} "
                f"({decision.reason}) before any progress values were reported",
                metadata=keys,
            )
        keys[VALUES_AT_STEP] = last.step
        return Outcome(values=last.values, metadata={**last.metadata, **keys})

    def last_reported(self) -> Optional[ProgressLine]:
        """The latest values: the progress file's last valid line, or the run's newest
        checkpoint when it is later (an adopter's evaluation has not caught up)."""
        local = last_valid_line(self.task.progress_file)
        server = self.server_last
        if server is not None and (local is None or server.step > local.step):
            return server
        return local

    # Reading

    def _read(self, final: bool) -> None:
        for raw in self.tail.read(final):
            if self.tail.truncated:
                self.tail.truncated = False
                self._once("progress_file_truncated", "truncated", offset=raw.end)
            try:
                line = parse_raw(raw)
            except BadLine as exc:
                self._reject(exc.kind, str(exc), offset=raw.end)
                continue
            if self.last_step is not None and line.step <= self.last_step:
                self._reject(
                    NON_MONOTONIC,
                    f"step {line.step} does not follow step {self.last_step}",
                    offset=raw.end,
                    step=line.step,
                )
                continue
            self.last_step = line.step
            self.pending.append(line)

    # Forwarding

    def _forward(self) -> None:
        while self.pending and self.decision is None and not self.off:
            if not self.opened and not self._open():
                return
            line = self.pending[0]
            if self.floor is not None and line.step <= self.floor:
                self.pending.popleft()
                self.counts["skipped"] += 1
                continue
            if self.run_id is None:
                return
            try:
                answer = self.runs.post(self.run_id, line, self.sid)
            except ApiUnavailable as exc:
                # The same line again at the next look (a re-post at its step is idempotent).
                self._once("checkpoint_post_failed", "unavailable", error=str(exc))
                return
            except Refused as exc:
                self.pending.popleft()
                self._refused(exc, line)
                continue
            self.hooks.reached(AFTER_CHECKPOINT_POST)
            if answer is None:
                self.off = True  # no early stopping on this server (logged once by the runs)
                return
            self.pending.popleft()
            self.counts["forwarded"] += 1
            self.entry.progress_step = line.step
            self.entry.progress_offset = line.end
            self.journal.save(self.entry)
            if answer.should_stop:
                self._stopped(answer, line)

    def _refused(self, exc: Refused, line: ProgressLine) -> None:
        if exc.status in (403, 404):
            # Closed (an observation exists), full (max_checkpoints) or gone: forward no more.
            kind = "run_closed" if exc.status == 403 else "run_gone"
            self._reject(kind, exc.message, step=line.step)
            self.off = True
        else:
            kind = "conflict" if exc.status == 409 else "server_rejected"
            self._reject(kind, exc.message, step=line.step)

    def _open(self) -> bool:
        """Find or create the run and learn where it stands; False when it cannot be used now
        (``off`` when never in this attempt)."""
        if not self.runs.supported:
            self.off = True
            return False
        try:
            run = self.runs.open(self.sid, self.identity())
        except ApiUnavailable as exc:
            self._once("checkpoint_post_failed", "unavailable", error=str(exc))
            return False
        except Refused as exc:
            self._once("training_run_refused", "refused", status=exc.status, error=exc.message)
            self.off = True
            return False
        if run is None:
            self.off = True
            return False
        if run.checkpoint_count:
            try:
                newest = self.runs.last_checkpoint(run.run_id)
            except ApiUnavailable as exc:
                self._once("checkpoint_post_failed", "unavailable", error=str(exc))
                return False
            except Refused:
                newest = None  # then a line the run has is refused (400) or replayed: harmless
            if newest is not None:
                self.server_last = newest
                self.floor = newest.step if self.floor is None else max(self.floor, newest.step)
        self.opened = True
        self.run_id = run.run_id
        if self.entry.training_run_id != run.run_id:
            self.entry.training_run_id = run.run_id
            self.journal.save(self.entry)
        self.log.event(
            "training_run_opened",
            self.sid,
            training_run=run.run_id,
            checkpoint_count=run.checkpoint_count,
            continues_after_step=self.floor,
        )
        if run.stopped_at_step is not None:
            self._decide(StopDecision(run.stopped_at_step, run.stopping_reason or "stopped"))
        return True

    def _stopped(self, answer: Answer, line: ProgressLine) -> None:
        """A checkpoint's answer said stop: the run's own record names the step and reason."""
        step, reason = line.step, reason_of(answer)
        if self.run_id is not None:
            try:
                run = self.runs.run(self.run_id)
            except (ApiUnavailable, Refused):
                run = None
            if run is not None and run.stopped_at_step is not None:
                step, reason = run.stopped_at_step, run.stopping_reason or reason
        decision = StopDecision(step, reason)
        if self.finished:
            self.log.event("stop_after_finish", self.sid, **decision.fields())
            return
        self._decide(decision)

    def _decide(self, decision: StopDecision) -> None:
        """Journal the decision, then tell the evaluation (the stop file) and the log."""
        self.decision = decision
        self.entry.stopped_at_step = decision.step
        self.entry.stopping_reason = decision.reason
        self.journal.save(self.entry)
        self.task.run_dir.mkdir(parents=True, exist_ok=True)
        write_stop_file(self.task.stop_file, decision.step, decision.reason)
        self.log.event("run_stopped_early", self.sid, training_run=self.run_id, **decision.fields())

    # Logging each kind of problem once per attempt

    def _reject(self, kind: str, error: str, **fields: Any) -> None:
        self.counts[kind] += 1
        self._once("progress_line_rejected", kind, error=error, **fields)

    def _once(self, event: str, kind: str, **fields: Any) -> None:
        if kind in self._logged:
            return
        self._logged.add(kind)
        self.log.event(event, self.sid, kind=kind, **fields)


_NOT_REJECTED = ("forwarded", "skipped")
