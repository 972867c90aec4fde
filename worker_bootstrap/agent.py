"""The agent's main loop: recover, resume this instance's open suggestions, adopt orphans, then
create a suggestion, evaluate, report, until a stop condition; then ``when_done``.

Every step that matters after a crash is journaled before the next one starts (see journal.py);
the server stays the source of truth for which suggestions are open and whose they are. The
parts are assembled by wiring.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict

from worker_bootstrap import __version__
from worker_bootstrap.ai_runs import OPEN_RUNS_POLL_S, WAIT_STEP_S, runs_left_open
from worker_bootstrap.attempt import AttemptRunner
from worker_bootstrap.config import Settings
from worker_bootstrap.cost.cap import CostCap, cap_reached
from worker_bootstrap.drain import drain
from worker_bootstrap.experiment_status import ExperimentStatus, budget_reached, open_count
from worker_bootstrap.instance import Instance
from worker_bootstrap.logs import EventLog
from worker_bootstrap.recovery import Recovery
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.scanning import Scanner
from worker_bootstrap.spot import SpotWatch
from worker_bootstrap.stop_flags import StopFlags
from worker_bootstrap.stopping_criteria import CriteriaWatch
from worker_bootstrap.suggestion_create import SuggestionCreator

Json = Dict[str, Any]

# Stop reasons after which the agent takes its last look and applies when_done.
_DONE = ("budget_reached", "cost_cap_reached", "stopping_criteria")


@dataclass(eq=False)
class Agent:
    """One agent process's work for one experiment."""

    settings: Settings
    instance: Instance
    log: EventLog
    summary: RunSummary
    stop: StopFlags
    spot: SpotWatch
    experiment: ExperimentStatus
    cost_cap: CostCap
    recovery: Recovery
    scanner: Scanner
    creator: SuggestionCreator
    attempt: AttemptRunner
    criteria: CriteriaWatch = field(default_factory=CriteriaWatch)
    _waited: bool = field(default=False, init=False)  # waiting_for_open_runs logged

    def run(self) -> RunSummary:
        """Recover, resume, adopt, then evaluate until a stop condition; apply when_done."""
        self.log.event(
            "agent_started",
            agent_version=__version__,
            pid=os.getpid(),
            lifecycle=self.instance.identity.lifecycle,
        )
        if self.settings.settle_s <= self.settings.http_timeout_s:
            # The claim argument assumes a write lands within the settle period (docs/agent.md).
            self.log.event(
                "warning",
                message="OPTFLEET_CLAIM_SETTLE is not longer than "
                "OPTFLEET_HTTP_TIMEOUT: adoption races are only safe on a fast API",
            )
        experiment = self.experiment.fetch(at_start=True)
        self.recovery.kill_stale_evaluations()
        if experiment.get("state") != "deleted":
            self.recovery.report_journaled_results()
            self.scanner.scan(at_start=True, open_hint=open_count(experiment))
        reason = self._work_until_stopped(experiment)
        self.summary.stop_reason = reason
        if reason in _DONE and not self.stop.stop_requested():
            self.scanner.last_look()
        self.log.event("agent_finished", reason=reason, **self.summary.counts())
        if reason in (*_DONE, "experiment_deleted"):
            region = self.instance.region(self.settings.region)
            self.summary.drained = drain(
                self.settings.when_done, self.instance.instance_id, region, self.log
            )
        self.summary.interrupted = self.stop.interrupted
        return self.summary

    def _work_until_stopped(self, experiment: Json) -> str:
        """Scan when due, else create, evaluate and report one suggestion; returns why it ended."""
        while True:
            experiment = self.experiment.latest(experiment)
            reason = self._stop_reason(experiment)
            if reason == "budget_reached" and runs_left_open(experiment, self.settings.adopt):
                experiment = self._wait_for_open_runs()
                continue
            if reason:
                return reason
            if self.spot.notice():
                continue
            if self.scanner.due():
                self.scanner.scan()
                continue
            if cap_reached(self.cost_cap, experiment, self.log):
                return "cost_cap_reached"
            suggestion = self.creator.create()
            if suggestion is not None:
                self.attempt.run(suggestion, resumed=False)

    def _wait_for_open_runs(self) -> Json:
        """At an AI experiment's budget with runs still open (ai_runs.runs_left_open): wait
        until a scan is due or ``OPEN_RUNS_POLL_S`` passed (a stop request ends the wait), scan
        if due (it adopts a run whose owner's lease lapsed), and read the experiment again."""
        if not self._waited:
            self._waited = True
            self.log.event("waiting_for_open_runs")
        clock, scanner = self.scanner.monotonic, self.scanner
        deadline = clock() + OPEN_RUNS_POLL_S
        while not self.stop.stop_requested() and not scanner.due() and clock() < deadline:
            left = min(deadline, scanner.cadence.next_scan) - clock()
            scanner.sleep(min(max(left, 0.0), WAIT_STEP_S))
        if not self.stop.stop_requested() and scanner.due():
            scanner.scan()
        return self.experiment.fetch()

    def _stop_reason(self, experiment: Json) -> str:
        if self.stop.stop_requested():
            return "stopped"
        if self.stop.interrupted:
            return "spot_interruption"
        if self.experiment.deleted or experiment.get("state") == "deleted":
            return "experiment_deleted"
        if budget_reached(experiment):
            return "budget_reached"
        if self.criteria.says_stop(self.experiment, experiment, self.log):
            return "stopping_criteria"
        limit = self.settings.max_evaluations
        if limit is not None and self.summary.evaluations >= limit:
            return "max_evaluations"
        return ""
