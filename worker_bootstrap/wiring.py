"""Assembling an agent: each part gets only the collaborators it uses.

From the outside in: the loop (agent.py) scans (scanning.py: lists, resumes, adopts), creates
suggestions (suggestion_create.py) and runs attempts (attempt.py), which supervise the evaluation
(supervision.py: lease, spot notice, progress and early stop, timeout) and report it
(reporting.py).
"""

from __future__ import annotations

import random
import threading
from typing import Optional

from worker_bootstrap.adoption import Claimer
from worker_bootstrap.agent import Agent
from worker_bootstrap.api_client import ApiClient
from worker_bootstrap.attempt import AttemptRunner
from worker_bootstrap.claims import Claims
from worker_bootstrap.clocks import Clocks
from worker_bootstrap.config import Settings
from worker_bootstrap.cost.attempt_spend import SpendTracker
from worker_bootstrap.cost.cap import CostCap
from worker_bootstrap.cost.pricing import PriceBook
from worker_bootstrap.create_marker import CreateMarker
from worker_bootstrap.evaluation import Evaluator
from worker_bootstrap.experiment_status import ExperimentStatus
from worker_bootstrap.instance import Instance
from worker_bootstrap.journal import Journal
from worker_bootstrap.lease import LeaseKeeper
from worker_bootstrap.logs import EventLog
from worker_bootstrap.orphans import OrphanAdopter
from worker_bootstrap.progress_forwarding import ProgressForwarder
from worker_bootstrap.recovery import Recovery
from worker_bootstrap.resuming import Resumer
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.scan_cadence import ScanCadence
from worker_bootstrap.scan_listing import ScanLister
from worker_bootstrap.scanning import Scanner
from worker_bootstrap.snapshots.closing import SnapshotClosingReporter
from worker_bootstrap.snapshots.restore import SnapshotRestorer
from worker_bootstrap.snapshots.store import SnapshotStore
from worker_bootstrap.snapshots.uploads import SnapshotUploads
from worker_bootstrap.spot import SpotWatch
from worker_bootstrap.steps import NO_HOOKS, StepHooks
from worker_bootstrap.stop_flags import StopFlags
from worker_bootstrap.suggestion_create import SuggestionCreator
from worker_bootstrap.supervision import EvaluationSupervisor
from worker_bootstrap.training_runs import TrainingRuns


def wire_agent(
    settings: Settings,
    api: ApiClient,
    instance: Instance,
    evaluator: Evaluator,
    journal: Journal,
    log: EventLog,
    *,
    clocks: Optional[Clocks] = None,
    rng: Optional[random.Random] = None,
    hooks: StepHooks = NO_HOOKS,
    stop_event: Optional[threading.Event] = None,
) -> Agent:
    """An agent for ``settings.experiment_id`` on ``instance``. ``clocks`` and ``rng`` (scan
    jitter, claim nonces) are injectable; ``hooks`` act at named steps (tests only: steps.py);
    ``stop_event`` is set on SIGTERM."""
    clocks = clocks or Clocks()
    rng = rng or random.SystemRandom()
    me = instance.instance_id
    eid = settings.experiment_id
    region = instance.region(settings.region)
    log.instance_id = me
    log.experiment_id = eid
    summary = RunSummary()
    stop = StopFlags(stop_event or threading.Event())
    experiment = ExperimentStatus(api, eid)
    spot = SpotWatch(instance.imds, log, stop)
    # Cost: prices cached on this instance's disk; the cap checked before each suggestion.
    prices = PriceBook(
        settings.state_dir / "prices.json", clock=clocks.wall, enabled=settings.pricing
    )
    spend = SpendTracker(me, lambda: instance.price(prices), monotonic=clocks.monotonic)
    claimer = Claimer(
        api,
        eid,
        me,
        settings.lease_ttl_s,
        settings.settle_s,
        sleep=clocks.sleep,
        clock=clocks.wall,
        nonce=lambda: f"{rng.getrandbits(64):016x}",
        identity=instance.metadata,
    )
    lease = LeaseKeeper(
        api=api,
        experiment_id=eid,
        instance_id=me,
        ttl_s=settings.lease_ttl_s,
        journal=journal,
        spend=spend,
        log=log,
        clock=clocks.wall,
    )
    # Checkpoint snapshots in S3 (docs/agent.md, "Checkpoints that travel"); off without a bucket.
    snapshots = snapshot_store(settings, region, clocks)
    reporter = SnapshotClosingReporter(
        api=api,
        settings=settings,
        journal=journal,
        claimer=claimer,
        experiment=experiment,
        summary=summary,
        log=log,
        hooks=hooks,
        clock=clocks.wall,
        snapshots=snapshots,
    )
    supervisor = EvaluationSupervisor(
        evaluator=evaluator,
        settings=settings,
        journal=journal,
        lease=lease,
        spot=spot,
        # Progress lines as checkpoints of the suggestion's training run (docs/api.md).
        progress=ProgressForwarder(
            runs=TrainingRuns(api, eid, log),
            journal=journal,
            identity=instance.metadata,
            log=log,
            hooks=hooks,
        ),
        stop=stop,
        summary=summary,
        log=log,
        hooks=hooks,
        monotonic=clocks.monotonic,
        restorer=SnapshotRestorer(snapshots, log, monotonic=clocks.monotonic, wall=clocks.wall),
        uploads=SnapshotUploads(
            store=snapshots,
            instance_id=me,
            interval_s=settings.checkpoint_interval_s,
            max_bytes=settings.checkpoint_max_bytes,
            staging=settings.state_dir / "snapshots",
            log=log,
            monotonic=clocks.monotonic,
        ),
    )
    attempt = AttemptRunner(
        settings=settings,
        instance=instance,
        journal=journal,
        spend=spend,
        supervisor=supervisor,
        reporter=reporter,
        log=log,
        hooks=hooks,
        monotonic=clocks.monotonic,
    )
    claims = Claims(
        claimer=claimer,
        experiment_id=eid,
        lease_ttl_s=settings.lease_ttl_s,
        journal=journal,
        log=log,
        hooks=hooks,
    )
    cadence = ScanCadence(
        settings.adopt_interval_s, settings.adopt_scan_rows, rng, settings.scan_filters
    )
    create_marker = CreateMarker(journal.state_dir, clocks.wall)
    scanner = Scanner(
        settings=settings,
        instance_id=me,
        cadence=cadence,
        lister=ScanLister(
            api=api, settings=settings, instance_id=me, cadence=cadence, log=log, clocks=clocks
        ),
        resumer=Resumer(
            api=api,
            settings=settings,
            journal=journal,
            claims=claims,
            lease=lease,
            summary=summary,
            log=log,
            clock=clocks.wall,
        ),
        adopter=OrphanAdopter(
            settings=settings,
            instance_id=me,
            region=region,
            claims=claims,
            stop=stop,
            summary=summary,
            log=log,
            clock=clocks.wall,
            work=attempt.run,
        ),
        journal=journal,
        stop=stop,
        log=log,
        monotonic=clocks.monotonic,
        sleep=clocks.sleep,
        work=attempt.run,
        create_marker=create_marker,
    )
    creator = SuggestionCreator(
        api=api,
        settings=settings,
        instance=instance,
        journal=journal,
        lease=lease,
        experiment=experiment,
        log=log,
        hooks=hooks,
        on_ambiguous=scanner.request_full_scan,
        marker=create_marker,
    )
    return Agent(
        settings=settings,
        instance=instance,
        log=log,
        summary=summary,
        stop=stop,
        spot=spot,
        experiment=experiment,
        cost_cap=CostCap(
            eid,
            region,
            prices,
            settings.max_cost_usd,
            clock=clocks.wall,
            instance_id=me,
            # The server's shared fleet figure (docs/api.md, "Fleet spend"); plain servers 404.
            request=lambda method, path, body: api.request(
                method, path, body=body, idempotent=method != "POST", attempts=2
            ),
            wait=stop.event.wait,
        ),
        recovery=Recovery(
            journal=journal, experiment_id=eid, reporter=reporter, summary=summary, log=log
        ),
        scanner=scanner,
        creator=creator,
        attempt=attempt,
    )


def snapshot_store(
    settings: Settings, region: Optional[str], clocks: Clocks
) -> Optional[SnapshotStore]:
    """The experiment's snapshot store, or None when ``OPTFLEET_CHECKPOINT_S3`` is not set (boto3
    is then never imported)."""
    if settings.checkpoint_s3 is None:
        return None
    from worker_bootstrap import aws

    return SnapshotStore(
        aws.client("s3", region), settings.checkpoint_s3, settings.experiment_id, clocks.wall
    )
