"""Per-instance counters and the demo's final summary, computed from the server's data only.

Everything here reads observations and suggestions as the API returns them: resumed, adopted and
duplicate counts come from observation metadata stamped by the agents, not from the demo's own
bookkeeping, so the summary shows what the server actually holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from optfleet.observations import observation_value
from suggestion_server.domain.stopping_savings import flag_set, stopped_early
from worker_bootstrap.progress_keys import STOPPED_AT_STEP, STOPPING_REASON


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    return item.get("metadata") or {}


def is_resumed(observation: dict[str, Any]) -> bool:
    """The agent resumed this suggestion after a restart on the same instance."""
    return flag_set(_meta(observation).get("resumed"))


def is_stopped_early(observation: dict[str, Any]) -> bool:
    """The server's early-stopping rule stopped this suggestion's training run."""
    return stopped_early(_meta(observation))


def adopted_by(observation: dict[str, Any]) -> str | None:
    """The instance that adopted this suggestion from a dead one, if it was adopted."""
    value = _meta(observation).get("adopted_by")
    return str(value) if value else None


@dataclass
class InstanceCounts:
    """What one instance has done, per the server."""

    done: int = 0
    failed: int = 0
    resumed: int = 0
    adopted: int = 0


def counts_by_instance(observations: list[dict[str, Any]]) -> dict[str, InstanceCounts]:
    """Observations grouped by ``metadata.instance_id`` (the instance that reported them)."""
    counts: dict[str, InstanceCounts] = {}
    for observation in observations:
        instance = str(_meta(observation).get("instance_id") or "(none)")
        row = counts.setdefault(instance, InstanceCounts())
        if observation.get("failed"):
            row.failed += 1
        else:
            row.done += 1
        if is_resumed(observation):
            row.resumed += 1
        if adopted_by(observation):
            row.adopted += 1
    return counts


def duplicate_count(observations: list[dict[str, Any]]) -> int:
    """Observations beyond the first for the same suggestion (0 when exactly-once held)."""
    per_suggestion = Counter(str(o.get("suggestion")) for o in observations if o.get("suggestion"))
    return sum(n - 1 for n in per_suggestion.values() if n > 1)


def best_observation(observations: list[dict[str, Any]], objective: str) -> dict[str, Any] | None:
    """The best successful observation for a single metric (``minimize`` or ``maximize``)."""
    scored = [(observation_value(o), o) for o in observations]
    candidates = [(v, o) for v, o in scored if v is not None]
    if not candidates:
        return None
    pick = min if objective == "minimize" else max
    value, observation = pick(candidates, key=lambda pair: pair[0])
    return {
        "value": value,
        "assignments": observation.get("assignments"),
        "suggestion": observation.get("suggestion"),
        "instance_id": _meta(observation).get("instance_id"),
    }


def summarize(
    observations: list[dict[str, Any]],
    open_left: int,
    objective: str,
    instances: list[dict[str, Any]],
    wall_s: float,
) -> dict[str, Any]:
    """The final summary object (what ``--json`` prints)."""
    failed = [
        {
            "suggestion": o.get("suggestion"),
            "instance_id": _meta(o).get("instance_id"),
            "reason": _meta(o).get("failure_reason") or "(no reason recorded)",
        }
        for o in observations
        if o.get("failed")
    ]
    adopted = [
        {
            "suggestion": o.get("suggestion"),
            "adopted_by": adopted_by(o),
            "previous_instance_ids": _meta(o).get("previous_instance_ids"),
        }
        for o in observations
        if adopted_by(o)
    ]
    resumed = [
        {"suggestion": o.get("suggestion"), "instance_id": _meta(o).get("instance_id")}
        for o in observations
        if is_resumed(o)
    ]
    stopped = [
        {
            "suggestion": o.get("suggestion"),
            "stopped_at_step": _meta(o).get(STOPPED_AT_STEP),
            "stopping_reason": _meta(o).get(STOPPING_REASON),
        }
        for o in observations
        if is_stopped_early(o)
    ]
    by_instance = {
        k: v.done + v.failed for k, v in sorted(counts_by_instance(observations).items())
    }
    return {
        "observations": len(observations),
        "succeeded": len(observations) - len(failed),
        "failed": len(failed),
        "failures": failed,
        "resumed": len(resumed),
        "resumed_suggestions": resumed,
        "adopted": len(adopted),
        "adopted_suggestions": adopted,
        "stopped_early": len(stopped),
        "stopped_early_suggestions": stopped,
        "duplicates": duplicate_count(observations),
        "open_left": open_left,
        "observations_by_instance": by_instance,
        "instances": instances,
        "best": best_observation(observations, objective),
        "wall_s": round(wall_s, 1),
    }
