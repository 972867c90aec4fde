"""Training runs and their checkpoints on the server (docs/api.md, "Training runs and early
stopping"): the few calls the agent makes, and whether the server has them at all.

A server without them (the open-source SigOpt server has no ``/experiments/{id}/training_runs``)
answers the first create with 404; from then on this agent process asks no more. Every call is
idempotent on our server (one run per suggestion; a checkpoint re-posted at its step with the same
values is the stored one, same decision), so failures are retried like reads. Each call makes at
most two attempts: the supervision loop waits for it, and a line not forwarded now is forwarded at
the next look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from worker_bootstrap.api_client import ApiClient, ApiError
from worker_bootstrap.logs import EventLog
from worker_bootstrap.progress import ProgressLine

Json = Dict[str, Any]
# What a server without the routes answers (an unknown path, or a method it does not route).
_NO_ROUTE = (404, 405, 501)
_ATTEMPTS = 2


@dataclass
class RunState:
    """A training run as the server has it."""

    run_id: str
    checkpoint_count: int = 0
    stopped_at_step: Optional[int] = None
    stopping_reason: Optional[str] = None


@dataclass
class Answer:
    """A checkpoint's answer: stop or go on, and which criteria held."""

    should_stop: bool
    stopping_reasons: Dict[str, bool] = field(default_factory=dict)


class Refused(Exception):
    """The server refused a call about one run (400, 403, 409, ...); ``status`` says how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class TrainingRuns:
    """The training-run calls for one experiment; ``supported`` turns False for good (in this
    process) once the server shows it has no training runs."""

    def __init__(self, api: ApiClient, experiment_id: str, log: EventLog) -> None:
        self.api = api
        self.experiment_id = experiment_id
        self.log = log
        self.supported = True

    def _path(self, suffix: str = "") -> str:
        return f"/experiments/{self.experiment_id}/training_runs{suffix}"

    def _call(
        self, method: str, path: str, body: Optional[Json] = None, params: Optional[Json] = None
    ) -> Json:
        try:
            return self.api.request(
                method, path, params=params, body=body, idempotent=True, attempts=_ATTEMPTS
            )
        except ApiError as exc:
            raise Refused(exc.status, exc.message) from None

    def open(self, suggestion_id: str, metadata: Json) -> Optional[RunState]:
        """The suggestion's run: created by the first call (with ``metadata``), the same run by
        every later one, from any instance. None when the server has no training runs."""
        if not self.supported:
            return None
        body = {"suggestion": suggestion_id, "metadata": metadata}
        try:
            run = self._call("POST", self._path(), body)
        except Refused as exc:
            if exc.status in _NO_ROUTE:
                self._unsupported(suggestion_id, f"POST {self._path()}: HTTP {exc.status}")
                return None
            raise
        return run_state(run)

    def run(self, run_id: str) -> RunState:
        """The run as it is now (its ``stopped_at_step`` and ``stopping_reason`` once stopped)."""
        return run_state(self._call("GET", self._path(f"/{run_id}")))

    def last_checkpoint(self, run_id: str) -> Optional[ProgressLine]:
        """The run's newest checkpoint as a progress line, None when it has none."""
        page = self._call("GET", self._path(f"/{run_id}/checkpoints"), params={"limit": 1})
        data = page.get("data") or []
        if not data or not isinstance(data[0], dict):
            return None
        newest: Json = data[0]
        values: List[Json] = []
        for item in newest.get("values") or []:
            value: Json = {"value": item.get("value")}
            if item.get("name") is not None:
                value["name"] = item["name"]
            if item.get("value_stddev") is not None:
                value["value_stddev"] = item["value_stddev"]
            values.append(value)
        return ProgressLine(
            step=int(newest.get("step") or 0),
            values=values,
            metadata=dict(newest.get("metadata") or {}),
        )

    def post(self, run_id: str, line: ProgressLine, suggestion_id: str) -> Optional[Answer]:
        """Post ``line`` as the run's checkpoint at its step; the server's answer, or None when
        the server gives no ``should_stop`` (it has no early stopping: asked no more)."""
        body: Json = {"values": line.values, "step": line.step}
        if line.metadata:
            body["metadata"] = line.metadata
        answer = self._call("POST", self._path(f"/{run_id}/checkpoints"), body)
        if not isinstance(answer.get("should_stop"), bool):
            self._unsupported(suggestion_id, "checkpoint answers carry no should_stop")
            return None
        reasons = answer.get("stopping_reasons")
        return Answer(
            should_stop=answer["should_stop"],
            stopping_reasons={
                str(k): bool(v) for k, v in (reasons if isinstance(reasons, dict) else {}).items()
            },
        )

    def _unsupported(self, suggestion_id: str, why: str) -> None:
        if self.supported:
            self.log.event("training_runs_unsupported", suggestion_id, detail=why)
        self.supported = False


def run_state(run: Json) -> RunState:
    """The fields of a training run's JSON the agent uses."""
    stopped = run.get("stopped_at_step")
    return RunState(
        run_id=str(run.get("id")),
        checkpoint_count=int(run.get("checkpoint_count") or 0),
        stopped_at_step=int(stopped) if isinstance(stopped, (int, float)) else None,
        stopping_reason=(str(run["stopping_reason"]) if run.get("stopping_reason") else None),
    )


def reason_of(answer: Answer) -> str:
    """A stopping reason from a checkpoint's answer alone (when the run cannot be read): the
    criteria that held, else ``max_checkpoints`` (the one reason without a key)."""
    held = sorted(name for name, holds in answer.stopping_reasons.items() if holds)
    return ",".join(held) if held else "max_checkpoints"
