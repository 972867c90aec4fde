"""The agent loop: resume this instance's open suggestions, adopt orphans, evaluate, report.

Every step that matters after a crash is journaled before the next one starts (see journal.py);
the server stays the source of truth for which suggestions are open and whose they are.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from worker_bootstrap import __version__
from worker_bootstrap.adoption import (
    HISTORY_KEY,
    Claimer,
    Detector,
    Ec2Detector,
    LeaseDetector,
    OrphanView,
    is_interrupted,
    lease_expiry,
    oldest_first,
    owner_of,
    rendezvous_winner,
)
from worker_bootstrap.api_client import AmbiguousRequest, ApiClient, ApiError, ApiUnavailable
from worker_bootstrap.config import Settings
from worker_bootstrap.cost.attempt_spend import SpendTracker
from worker_bootstrap.cost.cap import CostCap, CostUnknown
from worker_bootstrap.cost.pricing import Price, PriceBook
from worker_bootstrap.crash import CrashHook
from worker_bootstrap.evaluation import (
    Evaluator,
    Running,
    Task,
    kill_stale_group,
    process_start_time,
)
from worker_bootstrap.imds import Identity, ImdsClient, ImdsUnavailable
from worker_bootstrap.journal import CREATED, EVALUATED, REPORTED, Entry, Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.metadata import merged
from worker_bootstrap.results import Outcome
from worker_bootstrap.scan_cadence import ScanCadence

Json = Dict[str, Any]


@dataclass
class RunSummary:
    """What one agent run did."""

    evaluations: int = 0
    failures: int = 0
    resumed: int = 0
    adopted: int = 0
    reported_from_journal: int = 0
    dropped: int = 0
    interrupted: bool = False
    stop_reason: str = ""
    drained: str = ""
    suggestion_ids: List[str] = field(default_factory=list)


# In the state directory while a suggestion create is in flight (see _create_suggestion).
CREATE_MARKER = "create-in-flight"


class Agent:
    """One agent process's work for one experiment."""

    def __init__(
        self,
        settings: Settings,
        api: ApiClient,
        identity: Identity,
        evaluator: Evaluator,
        journal: Journal,
        log: EventLog,
        imds: Optional[ImdsClient] = None,
        boot_id: str = "",
        hostname: str = "",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
        crash: Optional[CrashHook] = None,
        stop_event: Optional[threading.Event] = None,
        detector: Optional[Detector] = None,
        prices: Optional[PriceBook] = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.identity = identity
        self.evaluator = evaluator
        self.journal = journal
        self.log = log
        self.imds = imds
        self.boot_id = boot_id
        self.hostname = hostname
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.rng = rng or random.SystemRandom()
        self.crash = crash or CrashHook()
        self.stop_event = stop_event or threading.Event()
        self._detector = detector
        self.me = identity.instance_id
        self.experiment_id = settings.experiment_id
        self.summary = RunSummary()
        self.claimer = Claimer(
            api,
            self.experiment_id,
            self.me,
            settings.lease_ttl_s,
            settings.settle_s,
            sleep=sleep,
            clock=clock,
            nonce=lambda: f"{self.rng.getrandbits(64):016x}",
            identity=self.identity_metadata,
        )
        self.cadence = ScanCadence(
            settings.adopt_interval_s, settings.adopt_scan_rows, self.rng, settings.scan_filters
        )
        self._open_seen = 0
        self._create_was_in_flight = False
        self._view: Optional[Tuple[Detector, OrphanView]] = None  # of the last full scan
        self._scan_now = False
        self._deleted = False
        self._progress_stale = False
        log.instance_id = self.me
        log.experiment_id = self.experiment_id
        # Cost: prices cached on this instance's disk; the cap checked before each suggestion.
        self.prices = prices or PriceBook(
            settings.state_dir / "prices.json", clock=clock, enabled=settings.pricing
        )
        self.spend = SpendTracker(self.me, self._own_price, monotonic=monotonic)
        self.cost_cap = CostCap(
            self.experiment_id, self._region(), self.prices, settings.max_cost_usd, clock=clock
        )

    # -- metadata ---------------------------------------------------------------------------

    def identity_metadata(self) -> Json:
        """The keys stamped on every suggestion and observation."""
        ident = self.identity
        return {
            "instance_id": ident.instance_id,
            "instance_type": ident.instance_type,
            "availability_zone": ident.availability_zone,
            "region": ident.region,
            "lifecycle": ident.lifecycle,
            "ami_id": ident.ami_id,
            "hostname": self.hostname,
            "boot_id": self.boot_id,
            "agent_version": __version__,
        }

    def _lease(self) -> float:
        return round(self.clock() + self.settings.lease_ttl_s, 3)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Recover, resume, adopt, then evaluate until a stop condition; apply when_done."""
        self.log.event(
            "agent_started",
            agent_version=__version__,
            pid=_pid(),
            lifecycle=self.identity.lifecycle,
        )
        if self.settings.settle_s <= self.settings.http_timeout_s:
            # The claim argument assumes a write lands within the settle period (docs/agent.md).
            self.log.event(
                "warning",
                message="OPTFLEET_CLAIM_SETTLE is not longer than "
                "OPTFLEET_HTTP_TIMEOUT: adoption races are only safe on a fast API",
            )
        experiment = self._experiment(at_start=True)
        self._create_was_in_flight = (self.journal.state_dir / CREATE_MARKER).exists()
        self._kill_stale_children()
        if experiment.get("state") != "deleted":
            self._recover_journal()
            self._scan(at_start=True, open_hint=_open_count(experiment))
        while True:
            if self._progress_stale:
                # One progress check per reported observation (the third call per evaluation).
                self._progress_stale = False
                experiment = self._experiment()
            reason = self._stop_reason(experiment)
            if reason:
                break
            if self._spot_notice():
                continue
            if self._scan_now or self.cadence.due(self.monotonic()):
                self._scan()
                continue
            if self._cost_cap_reached(experiment):
                reason = "cost_cap_reached"
                break
            suggestion = self._create_suggestion()
            if suggestion is not None:
                self._evaluate_and_report(suggestion, resumed=False)
        self.summary.stop_reason = reason
        if reason in ("budget_reached", "cost_cap_reached") and not self.stop_event.is_set():
            self._last_look()
        self.log.event("agent_finished", reason=reason, **_counts(self.summary))
        if reason in ("budget_reached", "cost_cap_reached", "experiment_deleted"):
            self._when_done()
        return self.summary

    def _stop_reason(self, experiment: Json) -> str:
        if self.stop_event.is_set():
            return "stopped"
        if self.summary.interrupted:
            return "spot_interruption"
        if self._deleted or experiment.get("state") == "deleted":
            return "experiment_deleted"
        budget = experiment.get("observation_budget")
        count = (experiment.get("progress") or {}).get("observation_count")
        if isinstance(budget, (int, float)) and isinstance(count, (int, float)) and count >= budget:
            return "budget_reached"
        limit = self.settings.max_evaluations
        if limit is not None and self.summary.evaluations >= limit:
            return "max_evaluations"
        return ""

    def _own_price(self) -> Price:
        ident = self.identity
        return self.prices.price(
            ident.instance_type, ident.lifecycle, ident.availability_zone, ident.region
        )

    def _cost_cap_reached(self, experiment: Json) -> bool:
        """True once the estimated spend reaches the dollar cap (docs/infra.md, Cost)."""
        from worker_bootstrap.aws import AwsError

        try:
            check = self.cost_cap.check(experiment)
        except CostUnknown as exc:
            self.log.event("cost_cap_unknown", error=str(exc))
            raise AwsError(str(exc)) from None
        if check is None:
            return False
        self.log.event(
            "cost_checked",
            spend_usd=round(check.spend_usd, 6),
            cap_usd=check.cap_usd,
            instances=check.instances,
            reached=int(check.reached),
        )
        return check.reached

    def _experiment(self, at_start: bool = False) -> Json:
        try:
            return self.api.experiment(self.experiment_id)
        except ApiError as exc:
            if exc.status == 404 and not at_start:
                self._deleted = True
                return {"state": "deleted"}
            if exc.status == 404:
                raise ApiError(
                    exc.method,
                    exc.path,
                    404,
                    f"experiment {self.experiment_id} not found (or not visible to this token)",
                ) from None
            raise

    # -- crash recovery ---------------------------------------------------------------------

    def _kill_stale_children(self) -> None:
        for entry in self.journal.entries(self.experiment_id):
            if kill_stale_group(entry.child_pid, entry.child_start):
                self.log.event("stale_evaluation_killed", entry.suggestion_id, pid=entry.child_pid)

    def _recover_journal(self) -> None:
        """Post results computed before a crash; drop records the server already settled."""
        for entry in self.journal.entries(self.experiment_id):
            if entry.stage == REPORTED:
                self.journal.forget(self.experiment_id, entry.suggestion_id)
            elif entry.stage == EVALUATED and entry.observation is not None:
                self.log.event("reporting_from_journal", entry.suggestion_id)
                self.summary.reported_from_journal += 1
                self._report(entry, force_check=True)

    # -- scanning: resume mine, adopt orphans ---------------------------------------------

    def _scan(self, at_start: bool = False, open_hint: Optional[int] = None) -> None:
        """List open suggestions (all, only lapsed ones, or at start only mine: scan_cadence.py);
        resume mine (oldest first), then adopt orphans."""
        full = at_start or self._scan_now or self._view is None
        self._scan_now = False
        if at_start and self.cadence.boots_own_only(open_hint):
            suggestions, kind = self._list_own_at_start(int(open_hint or 0))
        else:
            suggestions, kind = self._list_for_scan(full)
        mine = sorted((s for s in suggestions if owner_of(s) == self.me), key=oldest_first)
        self.log.event(
            f"{kind}_suggestions_listed", open=len(suggestions), mine=len(mine), at_start=at_start
        )
        if at_start:
            known = {str(s.get("id")) for s in mine}
            for entry in self.journal.entries(self.experiment_id):
                if entry.suggestion_id not in known:
                    # Closed, deleted or taken over while we were down: nothing left to do.
                    self.journal.forget(self.experiment_id, entry.suggestion_id)
        for suggestion in mine:
            if self.stop_event.is_set() or self.summary.interrupted:
                return
            self._resume(suggestion)
        if self.settings.adopt and not self.stop_event.is_set() and kind != "own":
            self._adopt(suggestions, self._view if kind == "lapsed" else None)

    def _last_look(self) -> None:
        """At the budget or the cap: nothing of ours, and no orphan we can see, left open.

        While few suggestions are open one full scan does both (resume mine, adopt orphans).
        At scale a full list per agent would be the fleet's one N² moment, so the agent lists
        only its own suggestions and takes the (sampled, possibly lapsed-only) orphan look.
        """
        if self._create_was_in_flight:
            # The previous process died while creating a suggestion that no scan has shown
            # yet: the server may still be computing it. Wait one request timeout (bounded)
            # before the lists below, so it is finished rather than left open.
            self.log.event("waiting_for_create_in_flight", seconds=self.settings.http_timeout_s)
            self.sleep(self.settings.http_timeout_s)
        final_look = self.settings.adopt and self.cadence.takes_final_look(self._open_seen)
        small = (
            self.settings.adopt_scan_rows <= 0 or self._open_seen <= self.settings.adopt_scan_rows
        )
        if final_look and small:
            self._scan_now = True  # a full scan: own suggestions with fresh leases listed too
            self._scan()
            return
        self._finish_own_left_open()
        if final_look and not self.stop_event.is_set():
            self._scan()

    def _finish_own_left_open(self) -> None:
        """Before draining, finish this instance's suggestions that are still open.

        A create in flight when the previous process was killed can commit after this process's
        scan at start; its lease is fresh, so the lapsed-only final look would not list it and
        it would stay open. One list filtered by owner (a plain server ignores the filter and
        answers the full list, filtered here) finds it.
        """
        own = {"metadata.instance_id": self.me}
        rows = list(self.api.open_suggestions(self.experiment_id, self.settings.page_limit, own))
        mine = sorted((s for s in rows if owner_of(s) == self.me), key=oldest_first)
        self.log.event("own_suggestions_listed", open=len(rows), mine=len(mine), at_start=False)
        for suggestion in mine:
            if self.stop_event.is_set() or self.summary.interrupted:
                return
            self._resume(suggestion)

    def _list_own_at_start(self, open_hint: int) -> Tuple[List[Json], str]:
        """This instance's open suggestions, if the server applies ``metadata.instance_id``."""
        now = self.monotonic()
        own = {"metadata.instance_id": self.me}
        try:
            rows = list(
                self.api.open_suggestions(self.experiment_id, self.settings.page_limit, own)
            )
        except ApiError as exc:
            if exc.status != 400:
                raise
            rows = list(self.api.open_suggestions(self.experiment_id, self.settings.page_limit))
        else:
            if all(owner_of(s) == self.me for s in rows):
                self.cadence.own_scan_done(now, open_hint)
                return rows, "own"
        # Ignored or refused: the answer is (or the retry was) every open suggestion.
        self._record_full_scan(now, rows)
        return rows, "open"

    def _list_for_scan(self, full: bool) -> Tuple[List[Json], str]:
        """The suggestions to scan: ``open`` (all) or ``lapsed`` (filtered by the server)."""
        now = self.monotonic()
        if not full and not self.cadence.wants_full(now):
            try:
                rows, applied = self.api.lapsed_open_suggestions(
                    self.experiment_id, self.clock(), self.settings.page_limit
                )
            except ApiError as exc:
                if exc.status != 400:
                    raise
                self.log.event("lease_filter_unsupported", status=exc.status, error=exc.message)
                self.cadence.filter_unsupported()
            else:
                if applied:
                    self.cadence.filtered_scan_done(now, len(rows), self._open_seen)
                    return rows, "lapsed"
                # Ignored by the server: the answer already is every open suggestion.
                self.log.event("lease_filter_unsupported", status=200, error="filter ignored")
                self.cadence.filter_unsupported()
                self._record_full_scan(now, rows)
                return rows, "open"
        rows = list(self.api.open_suggestions(self.experiment_id, self.settings.page_limit))
        self._record_full_scan(now, rows)
        return rows, "open"

    def _record_full_scan(self, now: float, rows: List[Json]) -> None:
        # The more open suggestions, the rarer this agent's full scans (scan_cadence.py).
        self._open_seen = len(rows)
        self.cadence.full_scan_done(now, len(rows))

    def _resume(self, suggestion: Json) -> None:
        sid = str(suggestion["id"])
        entry = self.journal.load(self.experiment_id, sid)
        # Created but never started (a crash right after create): a first start, not a resume.
        started_before = entry is not None and entry.attempts > 0
        metadata = dict(suggestion.get("metadata") or {})
        nonce = metadata.get("claim_nonce")
        own_claim = nonce is None or (entry is not None and entry.claim_nonce == nonce)
        margin = self.settings.settle_s + 1.0
        lease_fresh = lease_expiry(suggestion, self.settings.lease_ttl_s) - self.clock() > margin
        if is_interrupted(suggestion) or not lease_fresh or not own_claim:
            # Someone may be adopting it right now: take it back through the claim protocol.
            claimed = self._claim(sid)
            if claimed is None:
                self.log.event("resume_lost", sid)
                self.journal.forget(self.experiment_id, sid)
                return
            suggestion = claimed
        else:
            metadata["lease_expires_at"] = self._lease()
            updated = self.api.update_suggestion_metadata(self.experiment_id, sid, metadata)
            suggestion = updated if updated.get("id") else {**suggestion, "metadata": metadata}
        if started_before:
            self.summary.resumed += 1
            self.log.event("suggestion_resumed", sid)
        else:
            self.log.event("suggestion_picked_up", sid, reason="created before a restart")
            self._create_was_in_flight = False  # that create did land: nothing to wait for
        self._evaluate_and_report(suggestion, resumed=started_before)

    def _detector_for_scan(self) -> Detector:
        if self._detector is None:
            mode = self.settings.orphan_detection
            if mode == "auto":
                from worker_bootstrap import aws

                mode = "ec2" if aws.credentials_available(self._region()) else "lease"
            if mode == "ec2":
                self._detector = Ec2Detector(self._region())
            else:
                self._detector = LeaseDetector(self.settings.lease_ttl_s, clock=self.clock)
            self.log.event("orphan_detection", mode=mode)
        return self._detector

    def _region(self) -> Optional[str]:
        return self.settings.region or self.identity.region or None

    def _adopt(
        self, suggestions: List[Json], known: Optional[Tuple[Detector, OrphanView]] = None
    ) -> None:
        """Claim the orphans among ``suggestions``; ``known``: the view of the last full scan
        (the live set cannot be computed from lapsed suggestions only)."""
        if known is not None:
            detector, view = known
        else:
            detector = self._detector_for_scan()
            try:
                view = detector.view(self.me, self.experiment_id, suggestions)
            except Exception as exc:
                # EC2 unreachable or not permitted: leases still tell who is alive, so use them.
                self.log.event("orphan_scan_fallback", error=f"{type(exc).__name__}: {exc}")
                detector = LeaseDetector(self.settings.lease_ttl_s, clock=self.clock)
                view = detector.view(self.me, self.experiment_id, suggestions)
            self._view = (detector, view)
        now = self.clock()
        ttl = self.settings.lease_ttl_s
        candidates = sorted(
            (
                s
                for s in suggestions
                if owner_of(s) not in (None, self.me) and detector.orphaned(s, view)
            ),
            key=oldest_first,
        )
        for suggestion in candidates:
            if self.stop_event.is_set() or self.summary.interrupted:
                return
            sid = str(suggestion["id"])
            since = _orphaned_since(suggestion, ttl)
            winner = rendezvous_winner(sid, view.live)
            # The elected adopter goes first; anyone may step in once it is overdue.
            if winner != self.me and now < since + ttl:
                continue
            claimed = self._claim(sid, detector=detector, view=view)
            if claimed is None:
                self.log.event("claim_lost", sid, previous_owner=owner_of(suggestion))
                continue
            self.summary.adopted += 1
            self.log.event(
                "suggestion_adopted",
                sid,
                previous_owner=owner_of(suggestion),
                interrupted=is_interrupted(suggestion),
            )
            self._evaluate_and_report(claimed, resumed=False)

    def _claim(
        self, sid: str, detector: Optional[Detector] = None, view: Any = None
    ) -> Optional[Json]:
        detector = detector or _OwnOnly(self.me)
        try:
            claimed = self.claimer.claim(
                sid, detector, view, on_written=lambda: self.crash.reached("after_claim")
            )
        except (ApiError, ApiUnavailable, AmbiguousRequest) as exc:
            self.log.event("claim_failed", sid, error=str(exc))
            return None
        if claimed is not None:
            nonce = (claimed.get("metadata") or {}).get("claim_nonce")
            entry = self.journal.load(self.experiment_id, sid) or _new_entry(
                self.experiment_id, claimed
            )
            entry.claim_nonce = str(nonce) if nonce else None
            entry.adopted = (claimed.get("metadata") or {}).get("adopted_by") == self.me
            entry.lease_expires_at = lease_expiry(claimed, self.settings.lease_ttl_s)
            self.journal.save(entry)
        return claimed

    # -- creating a suggestion ------------------------------------------------------------

    def _create_suggestion(self) -> Optional[Json]:
        # A marker for the next process if this one dies while the create is in flight.
        marker = self.journal.state_dir / CREATE_MARKER
        marker.touch()
        try:
            return self._create_suggestion_once()
        finally:
            marker.unlink(missing_ok=True)

    def _create_suggestion_once(self) -> Optional[Json]:
        metadata = self.identity_metadata()
        metadata["lease_expires_at"] = self._lease()
        for attempt in range(self.settings.http_attempts):
            try:
                suggestion = self.api.create_suggestion(self.experiment_id, metadata)
            except AmbiguousRequest as exc:
                # It may exist: the next scan finds it by instance_id instead of creating another.
                self.log.event("suggestion_create_ambiguous", error=exc.cause)
                self._scan_now = True
                self.api.backoff.wait(attempt)
                mine = [
                    s
                    for s in self.api.open_suggestions(self.experiment_id, self.settings.page_limit)
                    if owner_of(s) == self.me
                    and self.journal.load(self.experiment_id, str(s.get("id"))) is None
                ]
                if mine:
                    return sorted(mine, key=oldest_first)[0]
                continue
            except ApiError as exc:
                if exc.status in (400, 404) and self._experiment().get("state") == "deleted":
                    self._deleted = True
                    return None
                raise
            self.crash.reached("after_suggestion_create")
            self.log.event("suggestion_created", str(suggestion.get("id")))
            return suggestion
        raise ApiUnavailable(
            f"creating a suggestion failed {self.settings.http_attempts} times in a row"
        )

    # -- evaluating ------------------------------------------------------------------------

    def _evaluate_and_report(self, suggestion: Json, resumed: bool) -> None:
        with self._working_on(str(suggestion["id"])):
            self._evaluate_then_report(suggestion, resumed)

    @contextlib.contextmanager
    def _working_on(self, sid: str) -> Iterator[None]:
        """Name ``sid`` in a fatal ``agent_error`` line raised while working on it."""
        self.log.working_on = sid
        yield
        self.log.working_on = None  # skipped when the body raises: the error names sid

    def _evaluate_then_report(self, suggestion: Json, resumed: bool) -> None:
        sid = str(suggestion["id"])
        metadata = suggestion.get("metadata") or {}
        entry = self.journal.load(self.experiment_id, sid) or _new_entry(
            self.experiment_id, suggestion
        )
        if entry.stage == EVALUATED and entry.observation is not None:
            self._report(entry)  # computed before a crash: post it, never recompute
            return
        entry.stage = CREATED
        entry.attempts += 1
        entry.lease_expires_at = lease_expiry(suggestion, self.settings.lease_ttl_s)
        entry.previous_instance_ids = str(metadata.get("previous_instance_ids") or "")
        self.journal.save(entry)
        self.spend.begin(sid, metadata)
        previous = [p for p in entry.previous_instance_ids.split(",") if p]
        task = Task(
            experiment_id=self.experiment_id,
            suggestion_id=sid,
            instance_id=self.me,
            assignments=dict(suggestion.get("assignments") or {}),
            checkpoint_dir=self.journal.checkpoint_dir(self.experiment_id, sid),
            run_dir=self.journal.run_dir(self.experiment_id, sid),
            resumed=resumed,
            attempt=entry.attempts + len(previous),
        )
        started = self.monotonic()
        outcome = self._evaluate(task, entry)
        if outcome is None:
            self.spend.end(sid)
            return
        duration = round(self.monotonic() - started, 3)
        entry.observation = self._observation_body(sid, outcome, task, duration, metadata)
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
        self.crash.reached("after_evaluation")
        self._report(entry)

    def _observation_body(
        self, sid: str, outcome: Outcome, task: Task, duration: float, suggestion_metadata: Json
    ) -> Json:
        agent: Json = self.identity_metadata()
        agent.update(duration_s=duration, attempt=task.attempt, resumed=1 if task.resumed else 0)
        agent.update(self.spend.observation_metadata(sid))
        for key in ("adopted_by", "previous_instance_ids", HISTORY_KEY):
            if suggestion_metadata.get(key):
                agent[key] = suggestion_metadata[key]
        body: Json = {"suggestion": sid}
        if outcome.failed:
            agent["failure_reason"] = outcome.failure_reason
            body["failed"] = True
        else:
            body["values"] = outcome.values
        body["metadata"] = merged(agent, outcome.metadata)
        return body

    def _evaluate(self, task: Task, entry: Entry) -> Optional[Outcome]:
        running = self.evaluator.start(task)
        if running.pid:
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
        if self.crash.armed("during_evaluation"):
            self._wait_for_checkpoint(running, task)
        self.crash.reached("during_evaluation")
        settings = self.settings
        start = self.monotonic()
        deadline = start + settings.timeout_s
        next_spot = start + settings.spot_poll_s
        renew_every = settings.lease_ttl_s / 3
        next_lease = start + renew_every
        tick = max(0.01, min(0.5, settings.spot_poll_s, renew_every))
        while True:
            outcome = running.wait(tick)
            if outcome is not None:
                return outcome
            now = self.monotonic()
            if self.stop_event.is_set():
                return self._stop_evaluation(running, task, "agent_stopping")
            if now >= next_spot:
                next_spot = now + settings.spot_poll_s
                if self._spot_notice():
                    return self._stop_evaluation(
                        running, task, "spot_interruption", record_interrupt=True
                    )
            if now >= next_lease:
                next_lease = now + renew_every
                if not self._renew_lease(entry):
                    running.kill()
                    running.wait(settings.grace_s)
                    self.log.event("ownership_lost", task.suggestion_id)
                    self.journal.forget(self.experiment_id, task.suggestion_id)
                    self.summary.dropped += 1
                    return None
            if now >= deadline:
                self._finish(running)
                self.log.event(
                    "evaluation_timed_out", task.suggestion_id, timeout_s=settings.timeout_s
                )
                return Outcome(
                    failure_reason=f"evaluation timed out after {settings.timeout_s:g} s",
                    metadata={"timeout_s": settings.timeout_s},
                )

    def _wait_for_checkpoint(self, running: Running, task: Task) -> None:
        """Test hook support: crash 'during evaluation' once it has written a checkpoint."""
        deadline = self.monotonic() + 30
        while self.monotonic() < deadline and running.poll() is None:
            if task.checkpoint_dir.exists() and any(task.checkpoint_dir.iterdir()):
                return
            self.sleep(0.02)

    def _finish(self, running: Running) -> Optional[Outcome]:
        running.terminate()
        outcome = running.wait(self.settings.grace_s)
        if outcome is None:
            running.kill()
            running.wait(5.0)
        return outcome

    def _stop_evaluation(
        self, running: Running, task: Task, why: str, record_interrupt: bool = False
    ) -> Optional[Outcome]:
        self.log.event(
            "evaluation_stopping", task.suggestion_id, reason=why, grace_s=self.settings.grace_s
        )
        outcome = self._finish(running)
        if outcome is not None and not outcome.failed:
            return outcome  # it finished within the grace period: report the real result
        if record_interrupt:
            self._record_interrupted(task.suggestion_id)
        self.log.event("suggestion_left_open", task.suggestion_id, reason=why)
        return None

    def _spot_notice(self) -> bool:
        if self.imds is None:
            return False
        try:
            action = self.imds.spot_action()
        except ImdsUnavailable as exc:
            self.log.event("spot_poll_failed", error=str(exc))
            return False
        if action is None:
            return False
        if not self.summary.interrupted:
            self.log.event("spot_interruption_notice", action=action.action, time=action.time)
        self.summary.interrupted = True
        return True

    def _record_interrupted(self, sid: str) -> None:
        """Read-modify-write the whole metadata map (PUT replaces it) with interrupted_at."""
        try:
            current = self.api.suggestion(self.experiment_id, sid)
            metadata = dict(current.get("metadata") or {})
            metadata["interrupted_at"] = int(self.clock())
            self.spend.stamp(sid, metadata)
            self.api.update_suggestion_metadata(self.experiment_id, sid, metadata)
            self.log.event("interruption_recorded", sid)
        except (ApiError, ApiUnavailable) as exc:
            self.log.event("interruption_record_failed", sid, error=str(exc))

    def _renew_lease(self, entry: Entry) -> bool:
        """Extend the lease; False when the suggestion is no longer ours to evaluate."""
        try:
            current = self.api.suggestion(self.experiment_id, entry.suggestion_id)
        except ApiError as exc:
            return exc.status != 404
        except ApiUnavailable:
            return True  # keep evaluating; the pre-post check decides later
        metadata = dict(current.get("metadata") or {})
        if current.get("state") != "open" or metadata.get("instance_id") != self.me:
            return False
        if entry.claim_nonce and metadata.get("claim_nonce") != entry.claim_nonce:
            return False
        metadata["lease_expires_at"] = self._lease()
        self.spend.stamp(entry.suggestion_id, metadata)
        try:
            self.api.update_suggestion_metadata(self.experiment_id, entry.suggestion_id, metadata)
        except (ApiError, ApiUnavailable) as exc:
            self.log.event("lease_renewal_failed", entry.suggestion_id, error=str(exc))
            return True
        entry.lease_expires_at = float(metadata["lease_expires_at"])
        self.journal.save(entry)
        return True

    # -- reporting -------------------------------------------------------------------------

    def _suggestion_state(self, sid: str) -> str:
        try:
            return str(self.api.suggestion(self.experiment_id, sid).get("state"))
        except ApiError as exc:
            if exc.status == 404:
                return "gone"
            raise

    def _report(self, entry: Entry, force_check: bool = False) -> None:
        """Post the journaled observation exactly once, then forget the suggestion."""
        with self._working_on(entry.suggestion_id):
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
                if exc.status in (400, 404) and self._experiment().get("state") == "deleted":
                    self._deleted = True
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
                    body = {
                        "suggestion": sid,
                        "failed": True,
                        "metadata": merged(
                            {"failure_reason": f"server rejected the result: {exc.message}"},
                            body.get("metadata"),
                        ),
                    }
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
        self.crash.reached("after_report")
        self._progress_stale = True
        entry.stage = REPORTED
        self.journal.save(entry)
        self.journal.forget(self.experiment_id, sid)
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

    def _still_mine(self, entry: Entry) -> bool:
        try:
            return self.claimer.still_mine(entry.suggestion_id, entry.claim_nonce)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    # -- when done -------------------------------------------------------------------------

    def _when_done(self) -> None:
        action = self.settings.when_done
        if action == "stay":
            return
        from worker_bootstrap import aws

        try:
            if action == "stop":
                done = aws.stop_instance(self.me, self._region())
            else:
                done = aws.terminate_instance(self.me, self._region())
        except aws.AwsError as exc:
            self.log.event("drain_failed", action=action, error=str(exc))
            self.summary.drained = f"failed: {exc}"
            return
        self.summary.drained = done
        self.log.event("drained", action=action, result=done)


class _OwnOnly:
    """Detector for re-claiming our own suggestion: nothing else is considered orphaned."""

    mode = "own"

    def __init__(self, me: str) -> None:
        self.me = me

    def orphaned(self, suggestion: Json, view: Any) -> bool:
        return owner_of(suggestion) == self.me


def _orphaned_since(suggestion: Json, lease_ttl_s: float) -> float:
    metadata = suggestion.get("metadata") or {}
    try:
        return float(metadata["interrupted_at"])
    except (KeyError, TypeError, ValueError):
        return lease_expiry(suggestion, lease_ttl_s)


def _open_count(experiment: Json) -> Optional[int]:
    """``progress.open_suggestion_count`` (our server's extension), if reported."""
    count = (experiment.get("progress") or {}).get("open_suggestion_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _new_entry(experiment_id: str, suggestion: Json) -> Entry:
    return Entry(
        experiment_id=experiment_id,
        suggestion_id=str(suggestion["id"]),
        assignments=dict(suggestion.get("assignments") or {}),
        created=int(suggestion.get("created") or 0),
    )


def _counts(summary: RunSummary) -> Json:
    return {
        "evaluations": summary.evaluations,
        "failures": summary.failures,
        "resumed": summary.resumed,
        "adopted": summary.adopted,
        "reported_from_journal": summary.reported_from_journal,
        "dropped": summary.dropped,
    }


def _pid() -> int:
    import os

    return os.getpid()
