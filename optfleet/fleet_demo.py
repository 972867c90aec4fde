"""The local fleet demo: a server, simulated instances, three injected faults, a live view.

Starts the suggestion server (SQLite in a temporary directory), creates the example Hartmann-6
experiment, starts N simulated instances (IMDSv2 emulator + real agent each), and injects three
faults as soon as some live instance is observably mid-evaluation on a suitable suggestion (open on
the server, not diverging, not used by another fault, its checkpoint on disk past the first step;
never after a fixed sleep). Each fault's victim is chosen at that moment, not fixed up front: a
fixed victim may draw only unsuitable suggestions until the budget runs out.

1. reboot: SIGKILL the agent and its evaluation, boot again with the same instance id and disk;
   the agent resumes the same suggestion from its checkpoint;
2. termination: the instance dies for good and a replacement with a new id starts; a live agent
   adopts the dead instance's open suggestion once its lease runs out;
3. spot interruption: the metadata service announces it; the agent checkpoints, stops the
   evaluation and hands the suggestion over; the instance is then terminated and replaced.

A fault only counts when it landed mid-evaluation. Before a kill the victim's agent is frozen
(SIGSTOP) and its journal read: if the evaluation already finished (the result is journaled, maybe
being posted) the agent is thawed and the demo waits for another moment. A spot notice that comes
too late (the evaluation finishes first and the agent reports it itself, as documented) is recorded
as missed and sent again to the replacement spot instance. Misses are listed with each injection.

The summary is computed from the server's data (observation metadata) only, plus, for each instance
the demo terminated, the suggestions the server held from it at the moment it was gone.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from optfleet.api_client import SigOptClient
from optfleet.cost.demo_cost import DemoCost
from optfleet.demo_report import InstanceCounts, counts_by_instance, summarize
from optfleet.demo_view import InstanceLine, render
from optfleet.experiment_spec import load_spec_file
from optfleet.fleet_sim import InstanceSpec, SimulatedInstance, new_instance_id
from optfleet.local_server import LocalServer
from worker_bootstrap.cost import keys
from worker_bootstrap.journal import CREATED, EVALUATED

REPO_ROOT = Path(__file__).resolve().parents[1]
OBJECTIVE = REPO_ROOT / "examples" / "hartmann6.py"
EXPERIMENT_FILE = REPO_ROOT / "examples" / "experiment.yaml"
POLL_S = 0.25
# Agent log events worth a line in the events panel (the agent logs one JSON line per event).
AGENT_EVENTS_SHOWN = frozenset(
    {
        "suggestion_resumed",
        "suggestion_adopted",
        "claim_lost",
        "resume_lost",
        "spot_interruption_notice",
        "suggestion_left_open",
        "run_stopped_early",
        "agent_finished",
    }
)

# Launch-template choices cycled over the simulated instances: (type, zone, lifecycle).
INSTANCE_SPECS = (
    ("c7i.large", "us-east-1a", "on-demand"),
    ("m7i.large", "us-east-1b", "on-demand"),
    ("c6i.large", "us-east-1c", "spot"),
    ("m6i.large", "us-east-1a", "spot"),
    ("c7i.xlarge", "us-east-1b", "on-demand"),
    ("m7i.xlarge", "us-east-1c", "spot"),
)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and timings of one demo run (``--short`` picks smaller ones)."""

    workers: int
    evaluations: int
    eval_seconds: float
    steps: int
    diverge_above: float
    lease_ttl_s: float
    timeout_s: float
    max_cost_usd: float | None = None  # the experiment's dollar cap (simulated prices)


@dataclass
class Injection:
    """One fault to inject, its victim, and what the server later shows about it."""

    kind: str  # reboot, termination, spot-interruption
    victim: str = ""  # instance id, chosen when the fault is injected ("" until then)
    suggestion: str | None = None
    step: int | None = None
    injected_at: float | None = None
    handed_over_at: float | None = None
    replacement: str | None = None
    done: bool = False
    outcome: str = "not injected"
    verified: bool = False
    missed: list[str] = field(default_factory=list)  # attempts that did not take effect

    def retry_later(self, why: str) -> None:
        """Record an attempt that did not take effect; the next moment gets a fresh try."""
        self.missed.append(f"{self.victim} suggestion {self.suggestion} at step {self.step}: {why}")
        self.victim = ""
        self.replacement = None
        self.suggestion = None
        self.step = None
        self.injected_at = None
        self.handed_over_at = None


@dataclass
class Snapshot:
    """The server's view at one poll."""

    open_suggestions: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)


class FleetDemo:
    """Runs one demo: server, experiment, instances, injections, live view, summary."""

    def __init__(self, settings: DemoSettings, show_live: bool, console: Console) -> None:
        self.settings = settings
        self.show_live = show_live
        self.console = console
        self.workdir = Path(tempfile.mkdtemp(prefix="optfleet-demo-"))
        self.server = LocalServer()
        self.client: SigOptClient | None = None
        self.experiment_id = ""
        self.objective = "minimize"
        self.instances: dict[str, SimulatedInstance] = {}
        self.roles: dict[str, str] = {}
        self.events: list[str] = []
        self.first_seen: dict[tuple[str, str], float] = {}
        self.seen_observations: set[str] = set()
        self.agent_events_seen: dict[str, int] = {}
        self.injections: list[Injection] = []
        # Instances terminated by the demo -> the suggestions the server held from them then.
        self.gone: dict[str, list[str]] = {}
        self.started = time.monotonic()
        self.server_start_s = 0.0
        self.cost = DemoCost()

    # Set-up
    def start(self) -> None:
        """Start the server, create the experiment and boot the instances."""
        for needed in (OBJECTIVE, EXPERIMENT_FILE):
            if not needed.exists():
                raise RuntimeError(
                    f"{needed} not found: run the demo from a source checkout "
                    "(pip install -e . in the repository)"
                )
        self.server.start()
        self.server_start_s = time.monotonic() - self.started
        self.cost.start()
        self.client = SigOptClient(self.server.url, self.server.token, timeout_s=10)
        spec = load_spec_file(EXPERIMENT_FILE)
        spec.update(
            name="optfleet-demo",
            observation_budget=self.settings.evaluations,
            parallel_bandwidth=self.settings.workers,
        )
        if self.settings.max_cost_usd is not None:
            spec["metadata"] = {
                **(spec.get("metadata") or {}),
                keys.MAX_COST_USD: self.settings.max_cost_usd,
            }
        experiment = self.client.create_experiment(spec)
        self.experiment_id = str(experiment["id"])
        self.objective = experiment["metrics"][0].get("objective") or "maximize"
        self.event(
            f"server {self.server.url}: experiment {self.experiment_id} "
            f"({self.settings.evaluations} evaluations, {self.settings.workers} instances)"
        )
        for index in range(self.settings.workers):
            self.launch(INSTANCE_SPECS[index % len(INSTANCE_SPECS)], role="worker")
        self.injections = [
            Injection("reboot"),
            Injection("termination"),
            Injection("spot-interruption"),
        ]
        if self.settings.max_cost_usd is not None:
            # An instance lost just before the cap leaves its suggestion open until its lease
            # runs out, and the drained fleet is gone by then: a cap run shows cost, not faults.
            self.injections = []
            self.event(f"cost cap ${self.settings.max_cost_usd:g} (simulated prices): no faults")

    def agent_settings(self) -> dict[str, str]:
        """The env file every agent gets (as /etc/optfleet/agent.env on EC2); short timings."""
        return {
            "SIGOPT_API_URL": self.server.url,
            "SIGOPT_API_TOKEN": self.server.token,
            "OPTFLEET_COMMAND": f"{shlex.quote(sys.executable)} {shlex.quote(str(OBJECTIVE))}",
            "OPTFLEET_TIMEOUT": "60",
            "OPTFLEET_WHEN_DONE": "stay",
            "OPTFLEET_LEASE_TTL": str(self.settings.lease_ttl_s),
            "OPTFLEET_ORPHAN_DETECTION": "lease",  # no EC2 API here: leases tell who is gone
            "OPTFLEET_ADOPT_INTERVAL": "0.5",
            # Short timings so adoption takes seconds, not minutes. The claim protocol waits
            # longer than a claim write can be in flight (the HTTP timeout), and a new owner's
            # first lease renewal (settle + ttl/3) must come before its claimed lease lapses.
            "OPTFLEET_HTTP_TIMEOUT": "2",
            "OPTFLEET_HTTP_ATTEMPTS": "6",
            "OPTFLEET_CLAIM_SETTLE": "2.5",
            "OPTFLEET_SPOT_POLL_INTERVAL": "0.25",
            "OPTFLEET_GRACE_PERIOD": "5",
        }

    def evaluation_env(self) -> dict[str, str]:
        """Environment of the agent process, inherited by the objective."""
        return {
            "HARTMANN6_SECONDS": str(self.settings.eval_seconds),
            "HARTMANN6_STEPS": str(self.settings.steps),
            "HARTMANN6_DIVERGE_ABOVE": str(self.settings.diverge_above),
            **self.cost.agent_env(),  # boto3 reads these from the process environment
        }

    def launch(self, spec: tuple[str, str, str], role: str) -> str:
        """Boot one new simulated instance with a fresh id."""
        instance_type, zone, lifecycle = spec
        instance_id = new_instance_id()
        instance = SimulatedInstance(
            instance_id=instance_id,
            spec=InstanceSpec(instance_type, zone, lifecycle),
            root=self.workdir / instance_id,
            agent_settings=self.agent_settings(),
            agent_env=self.evaluation_env(),
            experiment_id=self.experiment_id,
        )
        instance.root.mkdir(parents=True)
        self.instances[instance_id] = instance
        self.roles[instance_id] = role
        self.cost.launched(instance_id, instance_type, zone, lifecycle, self.experiment_id)
        instance.power_on()
        self.event(f"launched {instance_id} ({instance_type}, {lifecycle}, {zone})")
        return instance_id

    def event(self, text: str) -> None:
        """Record a line for the events panel (printed directly when there is no live view)."""
        stamp = f"{time.monotonic() - self.started:5.1f}s"
        self.events.append(f"{stamp}  {text}")
        if not self.show_live:
            print(f"{stamp}  {text}", file=sys.stderr, flush=True)

    def _client(self) -> SigOptClient:
        if self.client is None:
            raise RuntimeError("the demo's server is not started")
        return self.client

    # The run
    def snapshot(self) -> Snapshot:
        """Read open suggestions and observations from the server."""
        client = self._client()
        return Snapshot(
            open_suggestions=client.open_suggestions(self.experiment_id),
            observations=client.observations(self.experiment_id),
        )

    def open_by_instance(self, snap: Snapshot) -> dict[str, list[dict[str, Any]]]:
        """Open suggestions grouped by ``metadata.instance_id``."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for suggestion in snap.open_suggestions:
            owner = str((suggestion.get("metadata") or {}).get("instance_id") or "")
            grouped.setdefault(owner, []).append(suggestion)
        return grouped

    def mid_evaluation(
        self, instance_id: str, snap: Snapshot, exclude: set[str]
    ) -> tuple[str, int] | None:
        """(suggestion, step) when the instance is observably in the middle of an evaluation.

        Its suggestion is open on the server and the objective's checkpoint is past the first
        step with at least half the run to go. Suggestions the example objective will fail
        (the diverging region) are skipped: they end too early to be interrupted reliably.
        """
        instance = self.instances[instance_id]
        mine = {str(s["id"]): s for s in self.open_by_instance(snap).get(instance_id, [])}
        for checkpoint in instance.checkpoints():
            suggestion = mine.get(checkpoint.suggestion_id)
            if suggestion is None or checkpoint.suggestion_id in exclude:
                continue  # not open, or already used by another fault: one fault per suggestion
            if self.will_diverge(suggestion):
                continue
            if 1 <= checkpoint.step <= checkpoint.steps // 2:
                return checkpoint.suggestion_id, checkpoint.step
        return None

    def will_diverge(self, suggestion: dict[str, Any]) -> bool:
        """The example objective's failure rule (examples/hartmann6.py)."""
        assignments = suggestion.get("assignments") or {}
        try:
            return float(assignments["x1"]) + float(assignments["x2"]) > self.settings.diverge_above
        except (KeyError, TypeError, ValueError):
            return False

    def candidates(self, injection: Injection) -> list[SimulatedInstance]:
        """Live instances this fault may hit: agent running, not busy with another fault.

        A spot interruption only hits spot instances. An instance whose fault is still in
        progress (a spot notice awaiting its hand-over) takes no other fault.
        """
        busy = {i.victim for i in self.injections if i is not injection and not i.done}
        return [
            instance
            for instance in self.instances.values()
            if instance.state != "terminated"
            and instance.agent_running
            and instance.instance_id not in busy
            and (injection.kind != "spot-interruption" or instance.spec.lifecycle == "spot")
        ]

    def advance_injections(self, snap: Snapshot) -> None:
        """Inject each fault on the first live instance observably mid-evaluation."""
        for injection in self.injections:
            if injection.done:
                continue
            if injection.injected_at is None:
                candidates = self.candidates(injection)
                if not candidates:
                    injection.done = True
                    injection.outcome = "not injected: no instance left running to hit"
                    self.event(f"[{injection.kind}] {injection.outcome}")
                    continue
                used = {i.suggestion for i in self.injections if i.suggestion is not None}
                for victim in candidates:
                    found = self.mid_evaluation(victim.instance_id, snap, exclude=used)
                    if found is not None:
                        break
                else:
                    continue
                injection.victim = victim.instance_id
                injection.suggestion, injection.step = found
                injection.injected_at = time.monotonic()
                self.inject(injection, victim)
                if injection.victim:  # not retried: the fault landed (or the notice is out)
                    role = self.roles.get(victim.instance_id, "worker")
                    prefix = f"{injection.kind} victim"
                    self.roles[victim.instance_id] = (
                        prefix if role == "worker" else f"{prefix}, {role}"
                    )
            elif injection.kind == "spot-interruption":
                self.follow_spot_interruption(injection, self.instances[injection.victim], snap)

    def caught_mid_evaluation(self, injection: Injection, victim: SimulatedInstance) -> bool:
        """Freeze the victim's agent; True (still frozen) when it is evaluating the suggestion.

        The checkpoint and the snapshot that chose this moment may be a little old (under load,
        a second or more): the evaluation may have finished since and its observation may be on
        its way. The frozen agent's journal settles it: ``created`` means still evaluating, and no
        ``evaluated`` record means no observation can be in flight. Otherwise the agent is thawed
        and the attempt recorded as missed.
        """
        if not victim.freeze():
            injection.retry_later("the agent was not running")
            return False
        stages = victim.journal_stages()
        stage = stages.get(injection.suggestion or "")
        if stage == CREATED and EVALUATED not in stages.values():
            return True
        victim.thaw()
        injection.retry_later(
            f"its evaluation finished before the {injection.kind} could land "
            f"(journal: {stage or 'no record'}); waiting for another moment"
        )
        self.event(f"[{injection.kind}] {injection.missed[-1]}")
        return False

    def terminate_quietly(self, victim: SimulatedInstance) -> bool:
        """Terminate the victim unless it may be posting an observation right now.

        False (agent thawed, nothing done) while a journaled result awaits its post: an
        observation sent just before the kill could reach the server after the instance is gone.
        """
        if victim.freeze() and EVALUATED in victim.journal_stages().values():
            victim.thaw()
            return False
        victim.terminate()
        self.record_gone(victim.instance_id)
        return True

    def record_gone(self, instance_id: str) -> None:
        """Remember which suggestions the server holds from a just-terminated instance."""
        self.cost.ended(instance_id)
        self.gone[instance_id] = sorted(
            str(o.get("suggestion"))
            for o in self._client().observations(self.experiment_id)
            if str((o.get("metadata") or {}).get("instance_id")) == instance_id
        )

    def inject(self, injection: Injection, victim: SimulatedInstance) -> None:
        where = f"suggestion {injection.suggestion} at step {injection.step}/{self.settings.steps}"
        if injection.kind in ("reboot", "termination") and not self.caught_mid_evaluation(
            injection, victim
        ):
            return
        if injection.kind == "reboot":
            self.event(
                f"[reboot] SIGKILL agent of {victim.instance_id} during {where}; booting it again"
            )
            victim.reboot()
            injection.done = True
            injection.outcome = "rebooted with the same instance id"
        elif injection.kind == "termination":
            self.event(f"[termination] {victim.instance_id} terminated during {where}")
            victim.terminate()
            self.record_gone(victim.instance_id)
            injection.replacement = self.launch(
                (victim.spec.instance_type, victim.spec.availability_zone, victim.spec.lifecycle),
                role=f"replaces {victim.instance_id}",
            )
            injection.done = True
            injection.outcome = "terminated and replaced"
        else:
            self.event(f"[spot] interruption notice for {victim.instance_id} during {where}")
            victim.schedule_spot_interruption(in_s=120)

    def follow_spot_interruption(
        self, injection: Injection, victim: SimulatedInstance, snap: Snapshot
    ) -> None:
        """After the notice: wait for the hand-over on the server, then terminate and replace.

        When the evaluation finishes before the agent acts on the notice, the agent reports it
        itself (docs/agent.md) and stops: nothing was handed over. That attempt is recorded as
        missed and the notice goes to the replacement spot instance instead.
        """
        now = time.monotonic()
        if injection.handed_over_at is None:
            handed_over = any(
                str(s["id"]) == injection.suggestion
                and (s.get("metadata") or {}).get("interrupted_at")
                for s in snap.open_suggestions
            )
            reporter = next(
                (
                    str((o.get("metadata") or {}).get("instance_id"))
                    for o in snap.observations
                    if str(o.get("suggestion")) == injection.suggestion
                ),
                None,
            )
            if handed_over or (reporter is not None and reporter != victim.instance_id):
                # Handed over (or, on a slow machine, adopted before we saw interrupted_at).
                injection.handed_over_at = now
                how = "interrupted_at set" if handed_over else f"already finished by {reporter}"
                self.event(
                    f"[spot] {victim.instance_id} checkpointed and handed over suggestion "
                    f"{injection.suggestion} ({how})"
                )
            elif reporter == victim.instance_id:
                self.retarget_spot_interruption(injection, victim)
            elif now - (injection.injected_at or now) > 30:
                injection.outcome = "no hand-over within 30 s of the notice"
                self.event(f"[spot] {victim.instance_id}: {injection.outcome}")
                if self.replace_spot_victim(injection, victim):
                    injection.done = True
            return
        # The agent stops taking work after a notice; give it a bounded moment to exit itself.
        if victim.agent_running and now - injection.handed_over_at < 10:
            return
        if self.replace_spot_victim(injection, victim):
            injection.outcome = "interrupted, handed over and replaced"
            injection.done = True

    def retarget_spot_interruption(self, injection: Injection, victim: SimulatedInstance) -> None:
        """The notice came too late for this evaluation: replace the victim, then try again.

        The next attempt picks any live spot instance, the replacement among them.
        """
        if not self.replace_spot_victim(injection, victim):
            return  # still posting: the next poll tries again
        injection.retry_later(
            "its evaluation finished before the agent acted on the notice, so the agent "
            "reported it itself and handed nothing over"
        )
        self.event(f"[spot] {injection.missed[-1]}")

    def replace_spot_victim(self, injection: Injection, victim: SimulatedInstance) -> bool:
        """Terminate the victim and launch a spot replacement; False while it is still posting."""
        if not self.terminate_quietly(victim):
            return False
        self.event(f"[spot] {victim.instance_id} reclaimed by EC2; launching a replacement")
        spec = INSTANCE_SPECS[3]
        injection.replacement = self.launch(spec, role=f"replaces {victim.instance_id}")
        return True

    def report_new_observations(self, snap: Snapshot) -> None:
        """Event lines for resumed and adopted observations as they reach the server."""
        for observation in reversed(snap.observations):
            oid = str(observation["id"])
            if oid in self.seen_observations:
                continue
            self.seen_observations.add(oid)
            meta = observation.get("metadata") or {}
            who = meta.get("instance_id")
            if str(meta.get("resumed", "0")) in ("1", "1.0", "true"):
                self.event(
                    f"resumed: suggestion {observation.get('suggestion')} finished on {who} "
                    "after its reboot"
                )
            if meta.get("adopted_by"):
                self.event(
                    f"adopted: suggestion {observation.get('suggestion')} from "
                    f"{meta.get('previous_instance_ids')} finished by {meta.get('adopted_by')}"
                )
            if observation.get("failed"):
                self.event(
                    f"failed: suggestion {observation.get('suggestion')} on {who}: "
                    f"{meta.get('failure_reason')}"
                )

    def report_agent_events(self) -> None:
        """Event lines for what the agents log about resuming, adopting and interruptions."""
        for instance_id, instance in self.instances.items():
            events = instance.recent_events()
            start = self.agent_events_seen.get(instance_id, 0)
            self.agent_events_seen[instance_id] = len(events)
            for record in events[start:]:
                name = record.get("event")
                if name not in AGENT_EVENTS_SHOWN:
                    continue
                details = ", ".join(
                    f"{key}={record[key]}"
                    for key in (
                        "previous_owner",
                        "reason",
                        "action",
                        "stopping_reason",
                        "stopped_at_step",
                    )
                    if record.get(key) not in (None, "")
                )
                sid = record.get("suggestion_id")
                self.event(
                    f"agent {instance_id}: {name}"
                    + (f" suggestion {sid}" if sid else "")
                    + (f" ({details})" if details else "")
                )

    def live_lines(self, snap: Snapshot) -> list[InstanceLine]:
        counts = counts_by_instance(snap.observations)
        grouped = self.open_by_instance(snap)
        now = time.monotonic()
        lines = []
        for instance_id, instance in self.instances.items():
            suggestions = grouped.get(instance_id, [])
            current = (
                str(suggestions[0]["id"])
                if suggestions and instance.state != "terminated"
                else None
            )
            if current is not None:
                self.first_seen.setdefault((instance_id, current), now)
            step = ""
            for checkpoint in instance.checkpoints() if current else []:
                if checkpoint.suggestion_id == current:
                    step = f"{checkpoint.step}/{checkpoint.steps}"
            state = instance.state
            if state in ("running", "rebooting") and not instance.agent_running:
                state = instance.state = "finished"
                self.cost.ended(instance_id)  # drained: as when_done=terminate on EC2
            lines.append(
                InstanceLine(
                    instance_id=instance_id,
                    instance_type=instance.spec.instance_type,
                    lifecycle=instance.spec.lifecycle,
                    state=state,
                    suggestion=current,
                    step=step,
                    since=self.first_seen.get((instance_id, current)) if current else None,
                    counts=counts.get(instance_id) or InstanceCounts(),
                )
            )
        return lines

    def header(self, snap: Snapshot) -> str:
        return (
            f"experiment {self.experiment_id}: "
            f"{len(snap.observations)}/{self.settings.evaluations} "
            f"observations, {len(snap.open_suggestions)} open, "
            f"{time.monotonic() - self.started:.0f} s"
        )

    def finished(self, snap: Snapshot) -> bool:
        """All injections resolved and every live agent has stopped by itself."""
        if not all(i.done for i in self.injections):
            return False
        live = [i for i in self.instances.values() if i.state != "terminated"]
        return all(not i.agent_running for i in live)

    def run(self) -> dict[str, Any]:
        """Drive the fleet until it finishes or times out; return the summary."""
        # Counted from here, not from server start: a slow start (cold imports on a busy
        # machine) must not eat into the fleet's time.
        deadline = time.monotonic() + self.settings.timeout_s
        timed_out = False
        snap = self.snapshot()
        live = (
            Live(
                render(self.live_lines(snap), self.header(snap), self.events),
                console=self.console,
                refresh_per_second=4,
                transient=False,
            )
            if self.show_live
            else None
        )
        if live is not None:
            live.start()
        try:
            while True:
                snap = self.snapshot()
                self.report_agent_events()
                self.report_new_observations(snap)
                self.advance_injections(snap)
                lines = self.live_lines(snap)
                if live is not None:
                    live.update(render(lines, self.header(snap), self.events))
                if self.finished(snap):
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    self.event(f"timed out after {self.settings.timeout_s:.0f} s")
                    break
                time.sleep(POLL_S)
        finally:
            if live is not None:
                live.stop()
        return self.summary(timed_out)

    def summary(self, timed_out: bool) -> dict[str, Any]:
        """The final summary from the server's data, plus how each injection turned out."""
        client = self._client()
        observations = client.observations(self.experiment_id)
        open_left = client.open_suggestion_count(self.experiment_id)
        by_suggestion = {str(o.get("suggestion")): o for o in observations}
        for injection in self.injections:
            observation = by_suggestion.get(injection.suggestion or "")
            meta = (observation or {}).get("metadata") or {}
            if injection.kind == "reboot":
                injection.verified = (
                    bool(observation)
                    and meta.get("instance_id") == injection.victim
                    and str(meta.get("resumed")) in ("1", "1.0", "true")
                )
            else:
                injection.verified = (
                    bool(observation)
                    and bool(meta.get("adopted_by"))
                    and meta.get("instance_id") != injection.victim
                    and injection.victim in str(meta.get("previous_instance_ids") or "")
                )
        instances = [
            {
                "instance_id": i.instance_id,
                "instance_type": i.spec.instance_type,
                "lifecycle": i.spec.lifecycle,
                "availability_zone": i.spec.availability_zone,
                "role": self.roles.get(i.instance_id, ""),
                "boots": i.boots,
                "final_state": i.state,
            }
            for i in self.instances.values()
        ]
        result = summarize(
            observations,
            open_left,
            self.objective,
            instances,
            wall_s=time.monotonic() - self.started,
        )
        result.update(
            experiment_id=self.experiment_id,
            injections=[
                {
                    "kind": i.kind,
                    "victim": i.victim,
                    "suggestion": i.suggestion,
                    "step": i.step,
                    "replacement": i.replacement,
                    "outcome": i.outcome,
                    "verified": i.verified,
                    "missed": i.missed,
                }
                for i in self.injections
            ],
            gone=[
                {"instance_id": instance_id, "reported_before_gone": reported}
                for instance_id, reported in self.gone.items()
            ],
            timed_out=timed_out,
            server_start_s=round(self.server_start_s, 1),
            stop_reasons=self.stop_reasons(),
            cost=self.cost.summary(
                self.experiment_id,
                observations,
                client.open_suggestions(self.experiment_id),
                client.experiment(self.experiment_id),
            ),
        )
        return result

    def stop_reasons(self) -> dict[str, int]:
        """How many agents finished for which reason (budget_reached, cost_cap_reached, …)."""
        reasons: dict[str, int] = {}
        for instance in self.instances.values():
            for record in instance.recent_events():
                if record.get("event") == "agent_finished":
                    reason = str(record.get("reason"))
                    reasons[reason] = reasons.get(reason, 0) + 1
        return reasons

    def stop(self, keep_server: bool, keep_logs: bool) -> None:
        """Stop every agent and metadata service; the server too unless it is kept.

        The instances' directories (agent logs, journals) are removed unless ``keep_logs``.
        """
        for instance in self.instances.values():
            try:
                instance.stop_agent(grace_s=10)
            except (OSError, subprocess.SubprocessError) as exc:
                # Keep stopping the others; say which one may still be running.
                keep_logs = True
                print(f"optfleet demo: stopping {instance.instance_id}: {exc}", file=sys.stderr)
        if self.client is not None:
            self.client.close()
        self.cost.stop()
        if keep_server:
            self.server.detach()
        else:
            self.server.stop()
        if keep_logs:
            print(f"optfleet demo: agent logs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
