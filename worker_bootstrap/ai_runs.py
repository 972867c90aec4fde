"""Driving a SigOpt 8 AI experiment through the agent's API client (docs/agent.md, "AI
experiments").

An AI experiment takes no suggestion creates and no observations on the Core routes: its
suggestions come with runs (``POST /aiexperiments/{id}/training_runs``) and a run's end makes its
one observation. Everything else the agent does goes through the Core routes of the same id,
which the server serves for AI experiments too: the run's suggestion is listed, read and updated
there (the lease and claims live in its metadata, as in a Core experiment), and the run is found
by its suggestion (``POST /experiments/{id}/training_runs {"suggestion"}`` answers the existing
run), which also carries the progress checkpoints. So only three calls change here:

- reading the experiment: ``GET /aiexperiments/{id}`` (which reserves one run of the budget for
  this connection until its next create; the answer may wait for other reservations);
- "create a suggestion": create a run whose metadata is the stamp; the server gives its
  suggestion the same metadata, and the agent goes on with that suggestion;
- "report an observation": end the run (``PUT /training_runs/{rid}`` with the observation's
  metadata, its values by metric name and ``state`` completed, or ``state`` failed).

Against a Core experiment (``kind`` ``core``, or ``auto`` reading a Core experiment) every call
is the plain client's.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from worker_bootstrap.api_client import AmbiguousRequest, ApiClient, ApiError, ApiUnavailable

Json = Dict[str, Any]
KINDS = ("auto", "core", "ai")
# GET /aiexperiments/{id} may wait ~31 s for other agents' run reservations (docs/api.md).
RESERVATION_WAIT_S = 40.0


# While waiting for open runs at the budget: the experiment is read again this often (their
# ends), and a stop request is noticed within WAIT_STEP_S.
OPEN_RUNS_POLL_S = 5.0
WAIT_STEP_S = 1.0


def runs_left_open(experiment: Json, adopt: bool) -> bool:
    """At an AI experiment's budget, whether runs are still open: each took its share of the
    budget when it was created, so if its owner dies no new run replaces it, and only an agent
    still running can adopt it once its lease lapses (docs/agent.md, "AI experiments"). Agents
    that adopt (``OPTFLEET_ADOPT``) wait for them; a Core experiment's budget counts
    observations, so its agents create on while an orphan waits."""
    if not adopt or not is_ai_experiment(experiment):
        return False
    count = (experiment.get("progress") or {}).get("active_run_count")
    return isinstance(count, int) and not isinstance(count, bool) and count > 0


def is_ai_experiment(experiment: Json) -> bool:
    """Whether ``experiment`` (as read) is an AI experiment."""
    return experiment.get("object") == "aiexperiment" or experiment.get("runs_only") is True


class AiRunsApi(ApiClient):
    """The agent's API client, which drives an AI experiment through runs when the experiment is
    one (``kind`` ``ai``, or ``auto`` once a read showed it)."""

    def __init__(self, *args: Any, kind: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kind not in KINDS:
            raise ValueError(f"experiment kind {kind!r}: expected one of {KINDS}")
        self.kind = kind
        self._metrics: List[str] = []
        self._runs: Dict[str, str] = {}  # suggestion id -> run id

    @property
    def ai(self) -> bool:
        return self.kind == "ai"

    def experiment(self, experiment_id: str) -> Json:
        """The experiment; an AI experiment read through ``/aiexperiments/{id}``."""
        if self.kind == "core":
            return super().experiment(experiment_id)
        # Auto: the Core route answers an AI experiment with a 301 there, which is followed.
        path = f"/aiexperiments/{experiment_id}" if self.ai else f"/experiments/{experiment_id}"
        connect, read = self.timeout
        self.timeout = (connect, max(read, RESERVATION_WAIT_S))
        try:
            experiment = self.request("GET", path)
        finally:
            self.timeout = (connect, read)
        if is_ai_experiment(experiment):
            self.kind = "ai"
            self._metrics = [
                str(m.get("name")) for m in experiment.get("metrics") or [] if isinstance(m, dict)
            ]
        elif self.kind == "auto":
            self.kind = "core"
        return experiment

    def create_suggestion(self, experiment_id: str, metadata: Json) -> Json:
        """A new run of the AI experiment stamped with ``metadata``, as its suggestion (not
        idempotent); a Core experiment's suggestion otherwise."""
        if not self._known_ai(experiment_id):
            return super().create_suggestion(experiment_id, metadata)
        name = f"optfleet {metadata.get('instance_id') or 'agent'}"[:100]
        run = self.request(
            "POST",
            f"/aiexperiments/{experiment_id}/training_runs",
            body={"name": name, "metadata": metadata},
            idempotent=False,
        )
        sid = str(run.get("suggestion"))
        self._runs[sid] = str(run.get("id"))
        return {
            "object": "suggestion",
            "id": sid,
            "experiment": experiment_id,
            "assignments": run.get("assignments") or {},
            "metadata": run.get("metadata") or {},
            "state": "open",
            "created": run.get("created"),
            "deleted": False,
        }

    def create_observation(self, experiment_id: str, body: Json) -> Json:
        """End the suggestion's run (its one observation), or post a Core observation."""
        if not self._known_ai(experiment_id):
            return super().create_observation(experiment_id, body)
        sid = str(body.get("suggestion"))
        ending: Json = {"metadata": body.get("metadata") or None}
        if body.get("failed"):
            ending["state"] = "failed"
        else:
            ending["values"] = self._values_by_name(experiment_id, body.get("values") or [])
            ending["state"] = "completed"
        # PUT replaces the run's metadata with the observation's, which the server copies.
        return self.request(
            "PUT",
            f"/training_runs/{self.run_of(experiment_id, sid)}",
            body=ending,
            idempotent=False,
        )

    def run_of(self, experiment_id: str, suggestion_id: str) -> str:
        """The id of the suggestion's run (the server answers a suggestion's existing run)."""
        known = self._runs.get(suggestion_id)
        if known is not None:
            return known
        run = self.request(
            "POST",
            f"/experiments/{experiment_id}/training_runs",
            body={"suggestion": suggestion_id},
        )
        self._runs[suggestion_id] = str(run.get("id"))
        return self._runs[suggestion_id]

    def _known_ai(self, experiment_id: str) -> bool:
        if self.kind == "auto":
            self.experiment(experiment_id)
        return self.ai

    def _values_by_name(self, experiment_id: str, values: List[Json]) -> Json:
        """The run's ``values`` map; every metric of the experiment needs one (a 400 here, as a
        Core observation would get, so the agent reports why instead)."""
        if not self._metrics:
            self.experiment(experiment_id)  # the metric names come with the experiment
        by_name: Json = {}
        for value in values:
            name = value.get("name")
            if name is None and len(self._metrics) == 1:
                name = self._metrics[0]
            if name not in self._metrics:
                raise _refused(
                    experiment_id,
                    f"Unknown metric name {name!r} - expected one of {self._metrics}",
                )
            entry: Json = {"value": value.get("value")}
            if value.get("value_stddev") is not None:
                entry["value_stddev"] = value["value_stddev"]
            by_name[str(name)] = entry
        missing = [m for m in self._metrics if m not in by_name]
        if missing:
            raise _refused(experiment_id, f"Missing value for metric {missing[0]!r}")
        return by_name


def training_run_of(api: ApiClient, experiment_id: str, suggestion_id: str) -> Optional[str]:
    """The id of an AI experiment's run for ``suggestion_id`` (``OPTFLEET_RUN_ID``); None for a
    Core experiment, or when the server could not be asked (the evaluation runs without it;
    the run's end asks again, with the reporter's retries)."""
    if not isinstance(api, AiRunsApi) or not api.ai:
        return None
    try:
        return api.run_of(experiment_id, suggestion_id)
    except (ApiError, ApiUnavailable, AmbiguousRequest):
        return None


def _refused(experiment_id: str, message: Optional[str]) -> ApiError:
    return ApiError("PUT", f"/aiexperiments/{experiment_id}/training_runs", 400, message or "")
