"""An emulator of the AWS calls cost estimates make, on a real HTTP server on 127.0.0.1.

moto has no Price List API, and the demo has no EC2. This serves, with the real wire shapes:

- Price List ``GetProducts`` (JSON 1.1, ``X-Amz-Target: AWSPriceListService.GetProducts``):
  ``TERM_MATCH`` filters over product documents shaped like AWS's (``product.attributes``,
  ``terms.OnDemand.<sku>.<offer>.priceDimensions.<rate>.pricePerUnit.USD``, a Reserved term, a
  Windows and a capacity-reservation twin per type), returned as JSON strings in ``PriceList``
  with ``NextToken`` paging;
- EC2 ``DescribeSpotPriceHistory`` and ``DescribeInstances`` (query protocol, XML), the latter
  over instances registered with :meth:`PricingEmulator.add_instance` (the demo's fleet).

Prices are whatever the caller registers: they are simulated, and the demo says so. Point boto3
at it with ``AWS_ENDPOINT_URL_PRICING`` / ``AWS_ENDPOINT_URL_EC2`` and any credentials.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from emulators.serving import ThreadServed

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}
STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}


@dataclass(frozen=True)
class SimulatedPrice:
    """One instance type's simulated prices in a region (USD per hour)."""

    instance_type: str
    on_demand_usd: float
    spot_usd: float
    region: str = "us-east-1"


@dataclass
class SimulatedInstance:
    """An instance ``DescribeInstances`` reports."""

    instance_id: str
    instance_type: str
    availability_zone: str
    lifecycle: str  # on-demand or spot
    launch_time: float
    tags: dict[str, str] = field(default_factory=dict)
    state: str = "running"
    ended_at: float | None = None


def _sku(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16].upper()


def product_document(
    price: SimulatedPrice,
    operating_system: str = "Linux",
    capacity_status: str = "Used",
    usd: float | None = None,
    effective: str = "2026-11-01T00:00:00Z",
) -> dict[str, Any]:
    """A Price List ``aws_v1`` product document for one instance type, as AWS shapes it."""
    value = price.on_demand_usd if usd is None else usd
    sku = _sku(price.region, price.instance_type, operating_system, capacity_status)
    offer, rate, reserved = "JRTCKXETXF", "6YS6EN2CT7", "4NA7Y494T4"
    family = price.instance_type.split(".")[0]
    return {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "servicecode": "AmazonEC2",
                "servicename": "Amazon Elastic Compute Cloud",
                "location": LOCATIONS.get(price.region, price.region),
                "locationType": "AWS Region",
                "regionCode": price.region,
                "instanceType": price.instance_type,
                "instanceFamily": "Compute optimized" if family.startswith("c") else "General",
                "currentGeneration": "Yes",
                "vcpu": "2",
                "memory": "4 GiB",
                "tenancy": "Shared",
                "operatingSystem": operating_system,
                "licenseModel": "No License required",
                "preInstalledSw": "NA",
                "capacitystatus": capacity_status,
                "marketoption": "OnDemand",
                "usagetype": f"BoxUsage:{price.instance_type}",
                "operation": "RunInstances" if operating_system == "Linux" else "RunInstances:0002",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.{offer}": {
                    "priceDimensions": {
                        f"{sku}.{offer}.{rate}": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"${value:.4f} per On Demand {operating_system} "
                            f"{price.instance_type} Instance Hour",
                            "appliesTo": [],
                            "rateCode": f"{sku}.{offer}.{rate}",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": f"{value:.10f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": effective,
                    "offerTermCode": offer,
                    "termAttributes": {},
                }
            },
            "Reserved": {
                f"{sku}.{reserved}": {
                    "priceDimensions": {
                        f"{sku}.{reserved}.2TG2D8R56U": {
                            "unit": "Quantity",
                            "description": "Upfront Fee",
                            "appliesTo": [],
                            "rateCode": f"{sku}.{reserved}.2TG2D8R56U",
                            "pricePerUnit": {"USD": f"{value * 5000:.0f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": effective,
                    "offerTermCode": reserved,
                    "termAttributes": {
                        "LeaseContractLength": "1yr",
                        "OfferingClass": "standard",
                        "PurchaseOption": "All Upfront",
                    },
                }
            },
        },
        "version": "20261101000000",
        "publicationDate": effective,
    }


def _matches(document: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    attributes = document["product"]["attributes"]
    for item in filters:
        kind, name, value = item.get("Type"), item.get("Field"), item.get("Value")
        if kind != "TERM_MATCH":
            raise ValueError(f"Filters.Type {kind!r}: this emulator supports TERM_MATCH only")
        actual = "AmazonEC2" if name == "ServiceCode" else attributes.get(str(name))
        if actual != value:
            return False
    return True


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _reason_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S GMT")


def _query_list(params: dict[str, list[str]], prefix: str) -> list[str]:
    """``Prefix.1``, ``Prefix.2`` … of a query-protocol request, in order."""
    numbered = {
        int(key[len(prefix) + 1 :]): values[0]
        for key, values in params.items()
        if key.startswith(prefix + ".") and key[len(prefix) + 1 :].isdigit()
    }
    return [numbered[index] for index in sorted(numbered)]


def _query_filters(params: dict[str, list[str]]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    index = 1
    while f"Filter.{index}.Name" in params:
        filters[params[f"Filter.{index}.Name"][0]] = _query_list(params, f"Filter.{index}.Value")
        index += 1
    return filters


class PricingEmulator(ThreadServed):
    """The server; ``prices`` and ``instances`` may be changed while it runs."""

    def __init__(
        self,
        prices: list[SimulatedPrice] | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
    ) -> None:
        self.prices = list(prices or [])
        self.clock = clock
        self.page_size = page_size
        self.instances: dict[str, SimulatedInstance] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        # Bound now, so the URL (and env()) is known before the emulator starts.
        self._bound = ThreadingHTTPServer((host, port), self._handler())
        bound_host, bound_port = self._bound.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}"

    def start(self) -> str:
        """Serve in a background thread; returns the URL."""
        self._serve(self._bound, "pricing-emulator")
        return self.url

    def add_instance(self, instance: SimulatedInstance) -> None:
        """Make an instance visible to ``DescribeInstances``."""
        with self._lock:
            self.instances[instance.instance_id] = instance

    def end_instance(self, instance_id: str, state: str = "terminated") -> None:
        """Stop or terminate an instance now (its StateTransitionReason carries the time)."""
        with self._lock:
            instance = self.instances[instance_id]
            if instance.ended_at is None:
                instance.ended_at = self.clock()
            instance.state = state

    def env(self) -> dict[str, str]:
        """Environment that points boto3's pricing and EC2 clients here."""
        return {
            "AWS_ENDPOINT_URL_PRICING": self.url,
            "AWS_ENDPOINT_URL_EC2": self.url,
            "AWS_ACCESS_KEY_ID": "simulated",
            "AWS_SECRET_ACCESS_KEY": "simulated",
        }

    def _count(self, action: str) -> None:
        with self._lock:
            self.calls[action] = self.calls.get(action, 0) + 1

    # Price List
    def documents(self) -> list[dict[str, Any]]:
        """Every product the price list holds: each type's Linux product and two look-alikes."""
        found = []
        for price in self.prices:
            found.append(product_document(price))
            found.append(
                product_document(price, operating_system="Windows", usd=price.on_demand_usd * 2)
            )
            found.append(
                product_document(price, capacity_status="UnusedCapacityReservation", usd=0.0)
            )
        return found

    def get_products(self, request: dict[str, Any]) -> dict[str, Any]:
        """The GetProducts response for one request body."""
        if request.get("ServiceCode") != "AmazonEC2":
            raise ValueError(f"ServiceCode {request.get('ServiceCode')!r}: only AmazonEC2 here")
        filters = request.get("Filters") or []
        matching = [d for d in self.documents() if _matches(d, filters)]
        start = int(request.get("NextToken") or 0)
        size = min(int(request.get("MaxResults") or self.page_size), self.page_size)
        page = matching[start : start + size]
        response: dict[str, Any] = {
            "FormatVersion": "aws_v1",
            "PriceList": [json.dumps(document) for document in page],
        }
        if start + size < len(matching):
            response["NextToken"] = str(start + size)
        return response

    # EC2
    def spot_price_history(self, params: dict[str, list[str]]) -> str:
        """``DescribeSpotPriceHistory`` XML: one current record per type and zone asked."""
        types = set(_query_list(params, "InstanceType"))
        zone = (params.get("AvailabilityZone") or [""])[0]
        items = []
        for price in self.prices:
            if types and price.instance_type not in types:
                continue
            zones = [zone] if zone else [f"{price.region}{s}" for s in "abc"]
            for name in zones:
                items.append(
                    "<item>"
                    f"<instanceType>{escape(price.instance_type)}</instanceType>"
                    "<productDescription>Linux/UNIX</productDescription>"
                    f"<spotPrice>{price.spot_usd:.6f}</spotPrice>"
                    f"<timestamp>{_iso(self.clock() - 600)}</timestamp>"
                    f"<availabilityZone>{escape(name)}</availabilityZone>"
                    "</item>"
                )
        return (
            f'<DescribeSpotPriceHistoryResponse xmlns="{EC2_NS}"><requestId>sim</requestId>'
            f"<spotPriceHistorySet>{''.join(items)}</spotPriceHistorySet><nextToken></nextToken>"
            "</DescribeSpotPriceHistoryResponse>"
        )

    def describe_instances(self, params: dict[str, list[str]]) -> str:
        """``DescribeInstances`` XML for the registered instances (tag and state filters)."""
        filters = _query_filters(params)
        with self._lock:
            instances = list(self.instances.values())
        items = []
        for instance in instances:
            if not self._selected(instance, filters):
                continue
            tags = "".join(
                f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
                for k, v in instance.tags.items()
            )
            reason = (
                f"User initiated ({_reason_time(instance.ended_at)})"
                if instance.ended_at is not None
                else ""
            )
            lifecycle = (
                "<instanceLifecycle>spot</instanceLifecycle>"
                if instance.lifecycle == "spot"
                else ""
            )
            items.append(
                "<item>"
                f"<reservationId>r-{instance.instance_id[2:]}</reservationId>"
                "<ownerId>123456789012</ownerId><groupSet/>"
                "<instancesSet><item>"
                f"<instanceId>{escape(instance.instance_id)}</instanceId>"
                "<imageId>ami-0simulated000000</imageId>"
                f"<instanceState><code>{STATE_CODES.get(instance.state, 16)}</code>"
                f"<name>{escape(instance.state)}</name></instanceState>"
                f"<reason>{escape(reason)}</reason>"
                f"<instanceType>{escape(instance.instance_type)}</instanceType>"
                f"<launchTime>{_iso(instance.launch_time)}</launchTime>"
                f"<placement><availabilityZone>{escape(instance.availability_zone)}"
                "</availabilityZone><tenancy>default</tenancy></placement>"
                f"{lifecycle}<tagSet>{tags}</tagSet>"
                "</item></instancesSet></item>"
            )
        return (
            f'<DescribeInstancesResponse xmlns="{EC2_NS}"><requestId>sim</requestId>'
            f"<reservationSet>{''.join(items)}</reservationSet></DescribeInstancesResponse>"
        )

    @staticmethod
    def _selected(instance: SimulatedInstance, filters: dict[str, list[str]]) -> bool:
        for name, values in filters.items():
            if name.startswith("tag:"):
                actual = instance.tags.get(name[4:])
            elif name == "instance-state-name":
                actual = instance.state
            elif name == "instance-id":
                actual = instance.instance_id
            else:
                return False  # a filter this emulator does not know matches nothing
            if actual not in values:
                return False
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests and the demo read their own logs

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                target = self.headers.get("X-Amz-Target") or ""
                if target:
                    self._price_list(target, raw)
                else:
                    self._ec2(parse_qs(raw))

            def _price_list(self, target: str, raw: str) -> None:
                kind = "application/x-amz-json-1.1"
                if target != "AWSPriceListService.GetProducts":
                    error = {"__type": "InvalidParameterException", "Message": f"{target}"}
                    self._send(400, json.dumps(error), kind)
                    return
                emulator._count("GetProducts")
                try:
                    self._send(200, json.dumps(emulator.get_products(json.loads(raw))), kind)
                except (ValueError, TypeError) as exc:
                    error = {"__type": "InvalidParameterException", "Message": str(exc)}
                    self._send(400, json.dumps(error), kind)

            def _ec2(self, params: dict[str, list[str]]) -> None:
                action = (params.get("Action") or [""])[0]
                emulator._count(action)
                try:
                    self._ec2_action(action, params)
                except Exception as exc:  # answer like EC2 does instead of dropping the socket
                    body = (
                        "<Response><Errors><Error><Code>InternalError</Code>"
                        f"<Message>{escape(str(exc))}</Message></Error></Errors>"
                        "<RequestID>sim</RequestID></Response>"
                    )
                    self._send(500, body, "text/xml")

            def _ec2_action(self, action: str, params: dict[str, list[str]]) -> None:
                if action == "DescribeSpotPriceHistory":
                    self._send(200, emulator.spot_price_history(params), "text/xml")
                elif action == "DescribeInstances":
                    self._send(200, emulator.describe_instances(params), "text/xml")
                else:
                    body = (
                        "<Response><Errors><Error><Code>InvalidAction</Code>"
                        f"<Message>{escape(action)} is not emulated</Message></Error></Errors>"
                        "<RequestID>sim</RequestID></Response>"
                    )
                    self._send(400, body, "text/xml")

        return Handler
