"""This instance as the agent describes it: identity keys for metadata, region, price."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from worker_bootstrap import __version__
from worker_bootstrap.cost.pricing import Price, PriceBook
from worker_bootstrap.imds import Identity, ImdsClient


@dataclass
class Instance:
    """The instance the agent runs on; ``imds`` None: no spot notices are polled (in-process
    tests)."""

    identity: Identity
    hostname: str = ""
    boot_id: str = ""
    imds: Optional[ImdsClient] = None

    @property
    def instance_id(self) -> str:
        return self.identity.instance_id

    def metadata(self) -> Dict[str, Any]:
        """The keys stamped on every suggestion and observation."""
        ident = self.identity
        return {
            "instance_id": ident.instance_id,
            "instance_type": ident.instance_type,
            "availability_zone": ident.availability_zone,
            "region": ident.region,
            "lifecycle": ident.lifecycle,
            "ami_id": ident.ami_id,
            "hostname": self.hostname,
            "boot_id": self.boot_id,
            "agent_version": __version__,
        }

    def region(self, configured: Optional[str]) -> Optional[str]:
        """The region for AWS calls: the configured one, else the instance's."""
        return configured or self.identity.region or None

    def price(self, prices: PriceBook) -> Price:
        """What one hour of this instance costs (unknown, with a reason, when it cannot be had)."""
        ident = self.identity
        return prices.price(
            ident.instance_type, ident.lifecycle, ident.availability_zone, ident.region
        )
