"""Spot interruption notices: polled from IMDS; once one came the agent starts nothing new."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from worker_bootstrap.imds import ImdsClient, ImdsUnavailable
from worker_bootstrap.logs import EventLog
from worker_bootstrap.stop_flags import StopFlags


@dataclass(eq=False)
class SpotWatch:
    """Asks IMDS for ``spot/instance-action``; a notice sets ``stop.interrupted``."""

    imds: Optional[ImdsClient]  # None: never interrupted (in-process tests)
    log: EventLog
    stop: StopFlags

    def notice(self) -> bool:
        """True when EC2 has scheduled this instance's interruption (logged once)."""
        if self.imds is None:
            return False
        try:
            action = self.imds.spot_action()
        except ImdsUnavailable as exc:
            self.log.event("spot_poll_failed", error=str(exc))
            return False
        if action is None:
            return False
        if not self.stop.interrupted:
            self.log.event("spot_interruption_notice", action=action.action, time=action.time)
        self.stop.interrupted = True
        return True
