"""What a previous agent process left behind: evaluation process groups that outlived it, and
results it journaled but did not report."""

from __future__ import annotations

from dataclasses import dataclass

from worker_bootstrap.evaluation import kill_stale_group
from worker_bootstrap.journal import EVALUATED, REPORTED, Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.reporting import ObservationReporter
from worker_bootstrap.run_summary import RunSummary


@dataclass(eq=False)
class Recovery:
    """Cleans up after the previous process of this agent, at start."""

    journal: Journal
    experiment_id: str
    reporter: ObservationReporter
    summary: RunSummary
    log: EventLog

    def kill_stale_evaluations(self) -> None:
        """Kill evaluation process groups recorded in the journal whose very process still runs."""
        for entry in self.journal.entries(self.experiment_id):
            if kill_stale_group(entry.child_pid, entry.child_start):
                self.log.event("stale_evaluation_killed", entry.suggestion_id, pid=entry.child_pid)

    def report_journaled_results(self) -> None:
        """Post results computed before a crash; drop records the server already settled."""
        for entry in self.journal.entries(self.experiment_id):
            if entry.stage == REPORTED:
                self.journal.forget(self.experiment_id, entry.suggestion_id)
            elif entry.stage == EVALUATED and entry.observation is not None:
                self.log.event("reporting_from_journal", entry.suggestion_id)
                self.summary.reported_from_journal += 1
                self.reporter.report(entry, force_check=True)
