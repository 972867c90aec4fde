"""The fleet's spend as the dollar cap reads it: one figure per experiment, not one EC2 scan per
agent per suggestion.

Paging ``ec2:DescribeInstances`` over the whole experiment before every suggestion costs ~125
calls/s at 1,000 agents, six times EC2's refill rate for such calls (shared with the rest of the
account). So the figure is measured once and shared:

- Against optfleet's server, the experiment's ``fleet_spend`` (docs/api.md, "Fleet spend") is
  the figure. An agent reads it when its copy is older than ``refresh_after_s`` (plus jitter);
  if it is stale, the agent asks for the refresh claim, which the server grants to one agent at
  a time, and only that agent pages EC2 and reports. EC2 calls: about one scan a minute per
  experiment, whatever the fleet's size.
- Against any other SigOpt server (no such route), each agent measures itself, at most once per
  ``refresh_after_s``.

Between measurements the figure is extrapolated with what the running instances add per second.
A transient EC2 failure (throttling, an outage) never stops the agent: it keeps the last figure
with its age and tries again after a bounded backoff. Permanent failures (no permission, an
unknown price) still raise :class:`~worker_bootstrap.cost.cap.CostUnknown` upstream.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from worker_bootstrap.cost.fleet_spend import FleetSpend

log = logging.getLogger("worker_bootstrap.cost")

REFRESH_AFTER_S = 60.0
RETRY_MIN_S = 5.0
RETRY_MAX_S = 60.0
# botocore error codes that no retry will change.
PERMANENT_EC2_ERRORS = frozenset(
    {
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "InvalidClientTokenId",
        "OptInRequired",
    }
)


class SpendUnavailable(Exception):
    """EC2 could not be asked right now (transient); ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_permanent(exc: BaseException) -> bool:
    """Whether an EC2 failure is one a retry cannot fix (permissions, credentials)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str((response.get("Error") or {}).get("Code", ""))
        return code in PERMANENT_EC2_ERRORS
    return False


@dataclass
class SpendFigure:
    """A measured fleet spend and what the running instances add per second since."""

    usd: Optional[float]
    usd_per_s: float
    seconds: float
    instances: int
    measured_at: float
    measured_by: str
    source: str  # "shared" (the server's figure), "own" (this agent measured it)

    def usd_at(self, now: float) -> Optional[float]:
        """The estimate at ``now``: the figure plus the running instances' cost since."""
        if self.usd is None:
            return None
        return self.usd + self.usd_per_s * max(0.0, now - self.measured_at)

    def age(self, now: float) -> float:
        return max(0.0, now - self.measured_at)

    @classmethod
    def from_wire(cls, body: Dict[str, Any]) -> Optional[SpendFigure]:
        if body.get("measured_at") is None:
            return None
        return cls(
            usd=None if body.get("usd") is None else float(body["usd"]),
            usd_per_s=float(body.get("usd_per_s") or 0.0),
            seconds=float(body.get("seconds") or 0.0),
            instances=int(body.get("instances") or 0),
            measured_at=float(body["measured_at"]),
            measured_by=str(body.get("measured_by") or ""),
            source="shared",
        )

    def to_wire(self) -> Dict[str, Any]:
        return {
            "usd": self.usd,
            "usd_per_s": self.usd_per_s,
            "seconds": self.seconds,
            "instances": self.instances,
            "measured_at": self.measured_at,
            "measured_by": self.measured_by,
        }


def figure_of(spend: FleetSpend, now: float, instance_id: str) -> SpendFigure:
    """A measured :class:`FleetSpend` as a shareable figure."""
    per_hour = spend.usd_per_hour
    return SpendFigure(
        usd=spend.usd,
        usd_per_s=(per_hour or 0.0) / 3600.0,
        seconds=spend.seconds,
        instances=len(spend.instances),
        measured_at=now,
        measured_by=instance_id,
        source="own",
    )


class SharedFleetSpend:
    """The fleet's current spend figure for one experiment (see the module doc).

    ``request(method, path, body)`` is the agent's API client call; ``measure()`` pages EC2 and
    returns a :class:`FleetSpend`; both are injected so tests count the calls.
    """

    def __init__(
        self,
        experiment_id: str,
        instance_id: str,
        measure: Callable[[], FleetSpend],
        request: Optional[Callable[[str, str, Optional[Dict[str, Any]]], Dict[str, Any]]],
        clock: Callable[[], float] = time.time,
        refresh_after_s: float = REFRESH_AFTER_S,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.instance_id = instance_id
        self._measure = measure
        self._request = request
        self._clock = clock
        self.refresh_after_s = refresh_after_s
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self._server_shares = request is not None  # until the server shows it has no route
        self.figure: Optional[SpendFigure] = None
        self._fresh_until = 0.0
        self._retry_at = 0.0
        self._failures = 0
        self.ec2_scans = 0
        self.last_spend: Optional[FleetSpend] = None  # what this agent measured last

    def _path(self) -> str:
        return f"/experiments/{self.experiment_id}/fleet_spend"

    def current(self) -> Optional[SpendFigure]:
        """The figure to check the cap against, or None while none could be measured yet.

        Raises :class:`SpendUnavailable` with ``permanent`` for failures no retry can fix.
        """
        now = self._clock()
        if self.figure is not None and now < self._fresh_until:
            return self.figure
        if self._server_shares:
            try:
                return self._from_server(now)
            except _NoSharing:
                self._server_shares = False
                log.info("fleet spend: the server shares no figure; measuring on this agent")
            except SpendUnavailable:
                raise
            except Exception as exc:  # the server is briefly unreachable: measure this once
                log.warning(
                    "fleet spend: the shared figure failed (%s: %s)", type(exc).__name__, exc
                )
        return self._own(now)

    def _keep(self, figure: SpendFigure, now: float) -> SpendFigure:
        self.figure = figure
        # Jitter spreads the fleet's reads of a stale figure over a quarter of the period.
        jitter = self._rng.uniform(0, self.refresh_after_s / 4)
        self._fresh_until = figure.measured_at + self.refresh_after_s + jitter
        if self._fresh_until <= now:  # stale and someone else is refreshing: look again soon
            self._fresh_until = now + RETRY_MIN_S
        return figure

    def _from_server(self, now: float) -> Optional[SpendFigure]:
        shared = SpendFigure.from_wire(self._call("GET", self._path(), None))
        if shared is not None and shared.age(now) < self.refresh_after_s:
            return self._keep(shared, now)
        claim = self._call("POST", self._path() + "/claims", {"instance_id": self.instance_id})
        if not claim.get("granted"):
            shared = SpendFigure.from_wire(claim.get("fleet_spend") or {}) or shared
            if shared is None:
                self._fresh_until = now + RETRY_MIN_S
                return self.figure
            return self._keep(shared, now)
        measured = self._scan(now)
        if measured is None:
            return self.figure if shared is None else self._keep(shared, now)
        stored = SpendFigure.from_wire(self._call("PUT", self._path(), measured.to_wire()))
        return self._keep(stored or measured, now)

    def _own(self, now: float) -> Optional[SpendFigure]:
        measured = self._scan(now)
        if measured is None:
            return self.figure
        return self._keep(measured, now)

    def _scan(self, now: float) -> Optional[SpendFigure]:
        """Page EC2 once; None (keeping the last figure) on a transient failure."""
        if now < self._retry_at:
            return None
        self.ec2_scans += 1
        try:
            spend = self._measure()
        except Exception as exc:
            if is_permanent(exc):
                raise SpendUnavailable(f"{type(exc).__name__}: {exc}", permanent=True) from None
            self._failures += 1
            wait = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (self._failures - 1))
            self._retry_at = now + wait
            self._fresh_until = now + wait
            age = "none" if self.figure is None else f"{self.figure.age(now):.0f}s"
            log.warning(
                "fleet spend: ec2:DescribeInstances failed (%s: %s); keeping the last figure "
                "(age %s), next try in %.0fs",
                type(exc).__name__,
                exc,
                age,
                wait,
            )
            return None
        self._failures = 0
        self._retry_at = 0.0
        self.last_spend = spend
        return figure_of(spend, self._clock(), self.instance_id)

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        if self._request is None:
            raise _NoSharing()
        try:
            return self._request(method, path, body)
        except Exception as exc:
            if getattr(exc, "status", None) in (404, 405):
                raise _NoSharing() from None
            raise


class _NoSharing(Exception):
    """The server has no fleet-spend route (a plain SigOpt server)."""
