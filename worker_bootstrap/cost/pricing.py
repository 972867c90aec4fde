"""Instance prices from AWS: on-demand from the Price List API, spot from EC2's price history.

No price is written into optfleet. On-demand prices come from ``pricing:GetProducts`` (Linux,
shared tenancy, no pre-installed software, the instance's region), spot prices from
``ec2:DescribeSpotPriceHistory`` for the instance's type and zone. Each answer is cached on disk
with the time it was fetched and asked again at most once an hour per (kind, region, type, zone).
A price that cannot be had (no permission, no network, no match) is cached as *unknown* with the
reason for the same hour: a cost built on it is unknown, never 0.

boto3 is imported only when a price is actually fetched (the agent must stay light); endpoints
follow the SDK's conventions (``AWS_ENDPOINT_URL_PRICING``, ``AWS_ENDPOINT_URL_EC2``), which is
how tests point them at the pricing emulator and moto.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ON_DEMAND = "on-demand"
SPOT = "spot"
CACHE_TTL_S = 3600.0
# The Price List API answers in a few regions only; us-east-1 serves every region's prices.
PRICE_LIST_REGION = "us-east-1"
MAX_PAGES = 10  # a correct filter matches one product; more pages mean a filter went wrong

ClientFactory = Callable[[str, Optional[str]], Any]


class PriceError(Exception):
    """A price could not be found; the message says which one and why."""


@dataclass(frozen=True)
class Price:
    """USD per instance-hour (None when unknown), its source and the time it applies from."""

    usd_per_hour: Optional[float]
    source: str  # "on-demand" or "spot"
    time: str = ""  # ISO 8601: the spot price's timestamp, the on-demand term's effective date
    fetched_at: float = 0.0
    error: str = ""  # why the price is unknown

    @property
    def known(self) -> bool:
        return self.usd_per_hour is not None

    def cost_usd(self, seconds: float) -> Optional[float]:
        """The cost of ``seconds`` instance-seconds, or None when the price is unknown."""
        if self.usd_per_hour is None:
            return None
        return self.usd_per_hour * seconds / 3600.0


def price_kind(lifecycle: Optional[str]) -> Optional[str]:
    """``spot`` or ``on-demand`` for an IMDS / EC2 lifecycle; None for kinds priced otherwise."""
    value = (lifecycle or ON_DEMAND).strip().lower()
    if value in ("", "normal", ON_DEMAND):
        return ON_DEMAND
    if value == SPOT:
        return SPOT
    return None  # scheduled, capacity-block: neither price list applies


def region_of_zone(availability_zone: str) -> str:
    """``us-east-1`` for ``us-east-1a`` (local zones such as ``us-east-1-bos-1a`` too)."""
    zone = availability_zone.strip()
    if "-" in zone and zone[-1:].isalpha():
        base = zone[:-1]
        parts = base.split("-")
        # us-east-1-bos-1 → us-east-1
        return "-".join(parts[:3]) if len(parts) > 3 else base
    return zone


def on_demand_filters(instance_type: str, region: str) -> List[Dict[str, str]]:
    """GetProducts filters that match exactly one product: Linux, shared, no extra software."""
    fields = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "marketoption": "OnDemand",
    }
    return [{"Type": "TERM_MATCH", "Field": key, "Value": value} for key, value in fields.items()]


def _as_document(item: Any) -> Dict[str, Any]:
    # PriceList entries are JSON documents sent as strings; newer botocore may decode them.
    document = json.loads(item) if isinstance(item, str) else item
    if not isinstance(document, dict):
        raise PriceError(f"price list entry is not a JSON object: {str(item)[:80]}")
    return document


def hourly_on_demand(document: Dict[str, Any]) -> Tuple[float, str]:
    """(USD per hour, effective date) from one Price List product document."""
    terms = (document.get("terms") or {}).get("OnDemand") or {}
    sku = (document.get("product") or {}).get("sku", "?")
    for term in terms.values():
        for dimension in (term.get("priceDimensions") or {}).values():
            if dimension.get("unit") != "Hrs":
                continue
            usd: Any = (dimension.get("pricePerUnit") or {}).get("USD")
            try:
                value = float(usd)
            except (TypeError, ValueError):
                raise PriceError(
                    f"product {sku}: pricePerUnit.USD {usd!r} is not a number"
                ) from None
            return value, str(term.get("effectiveDate") or "")
    raise PriceError(f"product {sku}: no OnDemand term priced in Hrs")


def on_demand_price(pricing: Any, instance_type: str, region: str) -> Tuple[float, str]:
    """Ask the Price List API; (USD per hour, effective date) or :class:`PriceError`."""
    found: Dict[float, str] = {}
    token: Optional[str] = None
    for _page in range(MAX_PAGES):
        request: Dict[str, Any] = {
            "ServiceCode": "AmazonEC2",
            "Filters": on_demand_filters(instance_type, region),
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        }
        if token:
            request["NextToken"] = token
        response = pricing.get_products(**request)
        for item in response.get("PriceList") or []:
            value, effective = hourly_on_demand(_as_document(item))
            found.setdefault(value, effective)
        token = response.get("NextToken")
        if not token:
            break
    if not found:
        raise PriceError(f"no on-demand Linux price for {instance_type} in {region}")
    if len(found) > 1:
        prices = ", ".join(f"{value:g}" for value in sorted(found))
        raise PriceError(f"{instance_type} in {region}: several on-demand prices ({prices})")
    value, effective = next(iter(found.items()))
    if value <= 0:
        raise PriceError(f"{instance_type} in {region}: the price list says {value:g} USD/h")
    return value, effective


def spot_price(
    ec2: Any, instance_type: str, availability_zone: str, now: dt.datetime
) -> Tuple[float, str]:
    """The Linux spot price in effect in the zone at ``now``: (USD per hour, its timestamp)."""
    response = ec2.describe_spot_price_history(
        InstanceTypes=[instance_type],
        ProductDescriptions=["Linux/UNIX"],
        AvailabilityZone=availability_zone,
        StartTime=now,
        MaxResults=100,
    )
    latest: Optional[Tuple[dt.datetime, float]] = None
    for record in response.get("SpotPriceHistory") or []:
        # Filter again: some endpoints ignore the zone or list the "(Amazon VPC)" variant too.
        if record.get("AvailabilityZone") != availability_zone:
            continue
        if record.get("InstanceType") != instance_type:
            continue
        if not str(record.get("ProductDescription", "")).startswith("Linux/UNIX"):
            continue
        stamp = record.get("Timestamp")
        when = stamp if isinstance(stamp, dt.datetime) else _parse_time(str(stamp))
        value = float(record["SpotPrice"])
        if latest is None or when > latest[0]:
            latest = (when, value)
    if latest is None:
        raise PriceError(f"no Linux spot price for {instance_type} in {availability_zone}")
    if latest[1] <= 0:
        raise PriceError(f"{instance_type} in {availability_zone}: spot price {latest[1]:g}")
    return latest[1], _iso(latest[0])


def _parse_time(text: str) -> dt.datetime:
    # Python 3.9's fromisoformat takes neither "Z" nor nanoseconds.
    text = text.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _endpoint(kind: str) -> str:
    # Prices from a test endpoint (moto, the emulator) must never answer for real AWS.
    service = "EC2" if kind == SPOT else "PRICING"
    return os.environ.get(f"AWS_ENDPOINT_URL_{service}") or os.environ.get("AWS_ENDPOINT_URL") or ""


def default_clients(service: str, region: Optional[str]) -> Any:
    """A boto3 client with timeouts and bounded retries (boto3 imported here, not at start)."""
    from worker_bootstrap.aws import client

    return client(service, region)


class PriceBook:
    """Prices by (kind, region, type, zone), fetched through ``clients`` and cached on disk.

    ``cache_path`` None keeps the cache in memory only. ``enabled`` False answers unknown
    without asking AWS (``OPTFLEET_PRICING=off``).
    """

    def __init__(
        self,
        cache_path: Optional[Path],
        clients: ClientFactory = default_clients,
        clock: Callable[[], float] = time.time,
        enabled: bool = True,
        ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self.cache_path = cache_path
        self.clients = clients
        self.clock = clock
        self.enabled = enabled
        self.ttl_s = ttl_s
        self.lookups = 0  # AWS calls made (tests and benchmarks read it)
        self._memory: Dict[str, Dict[str, Any]] = {}

    def price(
        self, instance_type: str, lifecycle: Optional[str], availability_zone: str, region: str = ""
    ) -> Price:
        """The price of one instance-hour of this instance; unknown (with a reason) if not had."""
        kind = price_kind(lifecycle)
        region = region or region_of_zone(availability_zone)
        if kind is None:
            return Price(None, str(lifecycle), error=f"no price source for lifecycle {lifecycle!r}")
        if not self.enabled:
            return Price(None, kind, error="pricing is turned off (OPTFLEET_PRICING=off)")
        if not instance_type or (kind == SPOT and not availability_zone):
            return Price(None, kind, error="instance type or zone unknown")
        zone = availability_zone if kind == SPOT else ""
        key = "|".join((kind, region, instance_type, zone, _endpoint(kind)))
        cached = self._cached(key)
        if cached is not None:
            return cached
        price = self._fetch(kind, instance_type, region, zone)
        self._store(key, price)
        return price

    def _fetch(self, kind: str, instance_type: str, region: str, zone: str) -> Price:
        now = self.clock()
        self.lookups += 1
        try:
            if kind == SPOT:
                ec2 = self.clients("ec2", region)
                when = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
                value, stamp = spot_price(ec2, instance_type, zone, when)
            else:
                pricing = self.clients("pricing", PRICE_LIST_REGION)
                value, stamp = on_demand_price(pricing, instance_type, region)
        except Exception as exc:  # no credentials, no permission, no network, no match
            reason = str(exc) if isinstance(exc, PriceError) else f"{type(exc).__name__}: {exc}"
            return Price(None, kind, fetched_at=now, error=reason[:300])
        return Price(value, kind, time=stamp, fetched_at=now)

    def _cached(self, key: str) -> Optional[Price]:
        entries = self._load()
        raw = entries.get(key)
        if not isinstance(raw, dict):
            return None
        try:
            price = Price(**raw)
        except TypeError:
            return None
        if self.clock() - price.fetched_at >= self.ttl_s or price.fetched_at > self.clock():
            return None
        return price

    def _load(self) -> Dict[str, Dict[str, Any]]:
        if self.cache_path is None:
            return self._memory
        try:
            raw = json.loads(self.cache_path.read_text())
        except (OSError, ValueError):
            return {}  # missing or unreadable: fetch again (it is only a cache)
        prices = raw.get("prices") if isinstance(raw, dict) else None
        return prices if isinstance(prices, dict) else {}

    def _store(self, key: str, price: Price) -> None:
        now = self.clock()
        entries = {
            k: v
            for k, v in self._load().items()
            if isinstance(v, dict) and now - float(v.get("fetched_at") or 0) < self.ttl_s
        }
        entries[key] = asdict(price)
        if self.cache_path is None:
            self._memory = entries
            return
        from worker_bootstrap.journal import atomic_write

        data = json.dumps({"version": 1, "prices": entries}, indent=1, sort_keys=True).encode()
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.cache_path, data)
        except OSError:
            # A full or read-only disk must not stop the agent: keep prices in memory from now.
            self.cache_path = None
            self._memory = entries
