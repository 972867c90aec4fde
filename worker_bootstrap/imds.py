"""IMDSv2 client: session token with a TTL, identity read once, tags, spot notices.

Follows botocore's conventions: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (default
http://169.254.169.254) and ``AWS_EC2_METADATA_DISABLED=true``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import requests

from worker_bootstrap.retry import Backoff

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_S = 21600


class ImdsUnavailable(Exception):
    """Instance metadata could not be read (not on EC2, IMDS disabled, or unreachable)."""


@dataclass
class Identity:
    """What the agent stamps on suggestions and observations."""

    instance_id: str
    instance_type: str
    availability_zone: str
    region: str
    lifecycle: str
    ami_id: str


@dataclass
class SpotAction:
    """A scheduled spot interruption (``spot/instance-action``)."""

    action: str
    time: str


class ImdsClient:
    """Reads instance metadata with an IMDSv2 token, refreshed before it expires and on a 401."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        session: Optional[requests.Session] = None,
        timeout_s: float = 2.0,
        backoff: Optional[Backoff] = None,
        clock: Callable[[], float] = time.monotonic,
        token_ttl_s: int = TOKEN_TTL_S,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = session or requests.Session()
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff(attempts=3, base_s=0.1, cap_s=1.0)
        self.clock = clock
        self.token_ttl_s = token_ttl_s
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self._identity: Optional[Identity] = None

    def _fetch_token(self) -> str:
        last = ""
        for attempt in range(self.backoff.attempts):
            if attempt:
                self.backoff.wait(attempt - 1)
            try:
                response = self.session.put(
                    f"{self.endpoint}/latest/api/token",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": str(self.token_ttl_s)},
                    timeout=self.timeout_s,
                )
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 200 and response.text:
                # Refresh a minute early (or at half the TTL for short TTLs).
                margin = min(60.0, self.token_ttl_s / 2)
                self._token_expires = self.clock() + self.token_ttl_s - margin
                return response.text
            last = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break
        raise ImdsUnavailable(
            f"cannot get an IMDSv2 token from {self.endpoint} ({last}); not running on EC2? "
            "Set AWS_EC2_METADATA_SERVICE_ENDPOINT to the metadata service URL"
        )

    def _token_value(self, refresh: bool = False) -> str:
        if refresh or self._token is None or self.clock() >= self._token_expires:
            self._token = self._fetch_token()
        return self._token

    def get(self, path: str) -> Optional[str]:
        """GET ``/latest/<path>``; the text, or None on 404. Raises ImdsUnavailable otherwise."""
        url = f"{self.endpoint}/latest/{path}"
        refreshed = False
        last = ""
        attempt = 0
        while attempt < self.backoff.attempts:
            try:
                response = self.session.get(
                    url,
                    headers={"X-aws-ec2-metadata-token": self._token_value()},
                    timeout=self.timeout_s,
                )
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
                self.backoff.wait(attempt)
                attempt += 1
                continue
            if response.status_code == 401 and not refreshed:
                refreshed = True  # token expired or revoked: get a fresh one, once
                self._token_value(refresh=True)
                continue
            if response.status_code == 200:
                return response.text
            if response.status_code == 404:
                return None
            last = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break
            self.backoff.wait(attempt)
            attempt += 1
        raise ImdsUnavailable(f"reading instance metadata {path} from {self.endpoint}: {last}")

    def _required(self, path: str) -> str:
        value = self.get(path)
        if value is None:
            raise ImdsUnavailable(f"instance metadata {path} is missing at {self.endpoint}")
        return value.strip()

    def identity(self) -> Identity:
        """Instance identity, read once and cached (it cannot change while the instance runs)."""
        if self._identity is None:
            document = json.loads(self._required("dynamic/instance-identity/document"))
            lifecycle = self.get("meta-data/instance-life-cycle")
            self._identity = Identity(
                instance_id=str(document["instanceId"]),
                instance_type=str(document.get("instanceType", "")),
                availability_zone=str(document.get("availabilityZone", "")),
                region=str(document.get("region", "")),
                lifecycle=(lifecycle or "on-demand").strip(),
                ami_id=str(document.get("imageId", "")),
            )
        return self._identity

    def tags(self) -> Dict[str, str]:
        """Instance tags when instance metadata tags are enabled, else ``{}``."""
        listing = self.get("meta-data/tags/instance")
        if not listing:
            return {}
        keys: List[str] = [key for key in listing.splitlines() if key.strip()]
        tags: Dict[str, str] = {}
        for key in keys:
            value = self.get(f"meta-data/tags/instance/{key}")
            if value is not None:
                tags[key] = value
        return tags

    def spot_action(self) -> Optional[SpotAction]:
        """The pending spot interruption, or None (404 means nothing is scheduled)."""
        text = self.get("meta-data/spot/instance-action")
        if not text:
            return None
        try:
            payload: Any = json.loads(text)
        except ValueError:
            return SpotAction(action="terminate", time="")
        if not isinstance(payload, dict):
            return SpotAction(action="terminate", time="")
        return SpotAction(action=str(payload.get("action", "")), time=str(payload.get("time", "")))

    def rebalance_recommended(self) -> bool:
        """True when EC2 issued a rebalance recommendation (an early spot warning)."""
        return self.get("meta-data/events/recommendations/rebalance") is not None
