"""Join EC2 instances with an experiment's suggestions and observations by ``metadata.instance_id``.

Pure functions over plain data (no AWS, no HTTP), so `optfleet status` and the demo share them and
tests can feed them anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from optfleet.aws_inventory import Instance

ACTIVE_STATES = ("pending", "running")


@dataclass
class InstanceRow:
    """One line of the status table."""

    instance_id: str
    state: str
    instance_type: str = ""
    lifecycle: str = ""
    availability_zone: str = ""
    current_suggestions: list[str] = field(default_factory=list)
    running_since: int | None = None
    done: int = 0
    failed: int = 0
    last_failure_reason: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class FleetStatus:
    """The joined view: one row per instance, plus the suggestions that need attention."""

    rows: list[InstanceRow]
    orphaned_suggestions: list[dict[str, Any]]
    unassigned_suggestions: list[dict[str, Any]]
    idle_instances: list[str]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "instances": [asdict(row) for row in self.rows],
            "orphaned_suggestions": self.orphaned_suggestions,
            "unassigned_suggestions": self.unassigned_suggestions,
            "idle_instances": self.idle_instances,
        }


def _instance_of(item: dict[str, Any]) -> str | None:
    value = (item.get("metadata") or {}).get("instance_id")
    return str(value) if value else None


def join_fleet_status(
    instances: list[Instance],
    open_suggestions: list[dict[str, Any]],
    observations: list[dict[str, Any]],
) -> FleetStatus:
    """Build the status rows.

    An open suggestion is *orphaned* when its instance is not pending/running (stopped, terminated,
    or unknown to EC2). A running instance with no open suggestion is *idle*. Instances that appear
    only in the experiment's data (no longer described by EC2) get a row with state ``gone``.
    """
    rows: dict[str, InstanceRow] = {
        i.instance_id: InstanceRow(
            instance_id=i.instance_id,
            state=i.state,
            instance_type=i.instance_type,
            lifecycle=i.lifecycle,
            availability_zone=i.availability_zone,
        )
        for i in instances
    }

    def row_for(instance_id: str) -> InstanceRow:
        if instance_id not in rows:
            rows[instance_id] = InstanceRow(instance_id=instance_id, state="gone")
        return rows[instance_id]

    # Observations come newest first: the first failure seen per instance is the latest one.
    for observation in observations:
        instance_id = _instance_of(observation)
        if instance_id is None:
            continue
        row = row_for(instance_id)
        if observation.get("failed"):
            row.failed += 1
            if row.last_failure_reason is None:
                row.last_failure_reason = str(
                    (observation.get("metadata") or {}).get("failure_reason") or "(no reason given)"
                )
        else:
            row.done += 1

    orphaned: list[dict[str, Any]] = []
    unassigned: list[dict[str, Any]] = []
    for suggestion in sorted(open_suggestions, key=lambda s: int(s["id"])):
        instance_id = _instance_of(suggestion)
        if instance_id is None:
            unassigned.append(suggestion)
            continue
        row = row_for(instance_id)
        row.current_suggestions.append(str(suggestion["id"]))
        created = suggestion.get("created")
        if isinstance(created, int) and (row.running_since is None or created < row.running_since):
            row.running_since = created
        if row.state not in ACTIVE_STATES:
            orphaned.append(suggestion)
            if "orphaned-suggestion" not in row.flags:
                row.flags.append("orphaned-suggestion")
        if (suggestion.get("metadata") or {}).get(
            "interrupted_at"
        ) and "interrupted" not in row.flags:
            row.flags.append("interrupted")

    idle = []
    for row in rows.values():
        if row.state == "running" and not row.current_suggestions:
            row.flags.append("idle")
            idle.append(row.instance_id)
    ordered = sorted(rows.values(), key=lambda r: (r.state not in ACTIVE_STATES, r.instance_id))
    return FleetStatus(ordered, orphaned, unassigned, sorted(idle))
