"""``when_done``: once the experiment is done, stay, stop or terminate this instance."""

from __future__ import annotations

from typing import Optional

from worker_bootstrap.logs import EventLog


def drain(action: str, instance_id: str, region: Optional[str], log: EventLog) -> str:
    """Apply ``action`` (``stay``, ``stop`` or ``terminate``) to this instance; returns what AWS
    did, ``failed: …`` (logged, never raised: the run still ends normally) or '' for ``stay``."""
    if action == "stay":
        return ""
    from worker_bootstrap import aws

    try:
        if action == "stop":
            done = aws.stop_instance(instance_id, region)
        else:
            done = aws.terminate_instance(instance_id, region)
    except aws.AwsError as exc:
        log.event("drain_failed", action=action, error=str(exc))
        return f"failed: {exc}"
    log.event("drained", action=action, result=done)
    return done
