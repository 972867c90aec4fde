"""Prices through boto3: on-demand from the pricing emulator's Price List, spot from moto's EC2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulators.pricing import PricingEmulator, SimulatedPrice, product_document
from tests.cli.conftest import MotoServer
from worker_bootstrap.cost.pricing import (
    ON_DEMAND,
    SPOT,
    PriceBook,
    PriceError,
    hourly_on_demand,
    on_demand_price,
    region_of_zone,
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clients_for(pricing: PricingEmulator, moto: MotoServer | None = None) -> Any:
    """boto3 clients: Price List at the emulator, EC2 at moto (or the emulator)."""

    def make(service: str, region: str | None) -> Any:
        endpoint = pricing.url if service == "pricing" or moto is None else moto.url
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region or "us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


def test_on_demand_price_parsed_from_a_real_shaped_price_list(pricing: PricingEmulator) -> None:
    client = clients_for(pricing)("pricing", "us-east-1")
    raw = client.get_products(ServiceCode="AmazonEC2", MaxResults=100)
    # The wire shape: PriceList is a list of JSON documents sent as strings.
    assert all(isinstance(item, str) for item in raw["PriceList"])
    assert len(raw["PriceList"]) == 9  # three types x (Linux, Windows, capacity reservation)
    value, effective = on_demand_price(client, "c6i.large", "us-east-1")
    assert value == 0.085
    assert effective == "2026-11-01T00:00:00Z"


def test_price_list_paging_and_ambiguity(pricing: PricingEmulator) -> None:
    pricing.page_size = 1
    client = clients_for(pricing)("pricing", "us-east-1")
    assert on_demand_price(client, "m7i.large", "us-east-1")[0] == 0.1008
    # A second Linux product with another price for the same filter: refuse to guess.
    pricing.prices.append(SimulatedPrice("m7i.large", on_demand_usd=0.2, spot_usd=0.05))
    with pytest.raises(PriceError, match="several on-demand prices"):
        on_demand_price(client, "m7i.large", "us-east-1")


def test_hourly_on_demand_rejects_a_document_without_an_hourly_term() -> None:
    document = product_document(SimulatedPrice("c6i.large", 0.085, 0.03))
    assert hourly_on_demand(json.loads(json.dumps(document)))[0] == 0.085
    document["terms"]["OnDemand"] = {}
    with pytest.raises(PriceError, match="no OnDemand term priced in Hrs"):
        hourly_on_demand(document)


def test_spot_and_on_demand_give_different_costs(
    pricing: PricingEmulator, moto: MotoServer, tmp_path: Path
) -> None:
    book = PriceBook(tmp_path / "prices.json", clients=clients_for(pricing, moto), clock=Clock())
    on_demand = book.price("c6i.large", "on-demand", "us-east-1a")
    spot = book.price("c6i.large", "spot", "us-east-1a")
    assert on_demand.source == ON_DEMAND and on_demand.usd_per_hour == 0.085
    assert spot.source == SPOT and spot.known  # moto's DescribeSpotPriceHistory
    assert spot.usd_per_hour != on_demand.usd_per_hour
    assert spot.time  # the price's own timestamp travels with it
    assert on_demand.cost_usd(3600) == pytest.approx(0.085)
    assert spot.cost_usd(3600) != on_demand.cost_usd(3600)


def test_unknown_price_gives_unknown_cost_and_is_cached_for_an_hour(tmp_path: Path) -> None:
    calls: list[str] = []

    def refusing(service: str, region: str | None) -> Any:
        calls.append(service)
        raise PermissionError("AccessDenied: pricing:GetProducts")

    clock = Clock()
    book = PriceBook(tmp_path / "prices.json", clients=refusing, clock=clock)
    price = book.price("c6i.large", "on-demand", "us-east-1a")
    assert price.usd_per_hour is None
    assert price.cost_usd(120) is None  # unknown, never 0
    assert "AccessDenied" in price.error
    assert book.price("c6i.large", "on-demand", "us-east-1a").error == price.error
    assert calls == ["pricing"]  # the negative answer is cached too
    clock.now += 3600
    book.price("c6i.large", "on-demand", "us-east-1a")
    assert calls == ["pricing", "pricing"]


def test_at_most_one_lookup_per_type_and_hour_across_restarts(
    pricing: PricingEmulator, tmp_path: Path
) -> None:
    clock = Clock()
    cache = tmp_path / "prices.json"
    first = PriceBook(cache, clients=clients_for(pricing), clock=clock)
    for _ in range(3):
        assert first.price("c6i.large", "on-demand", "us-east-1a").usd_per_hour == 0.085
        first.price("c6i.large", "spot", "us-east-1b")
    assert first.lookups == 2
    stored = json.loads(cache.read_text())["prices"]
    assert {entry["fetched_at"] for entry in stored.values()} == {clock.now}
    # A new process (agent restart) reads the disk cache instead of asking again.
    second = PriceBook(cache, clients=clients_for(pricing), clock=clock)
    assert second.price("c6i.large", "on-demand", "us-east-1a").usd_per_hour == 0.085
    assert second.lookups == 0
    clock.now += 3599
    second.price("c6i.large", "on-demand", "us-east-1a")
    assert second.lookups == 0
    clock.now += 1
    second.price("c6i.large", "on-demand", "us-east-1a")
    assert second.lookups == 1
    assert pricing.calls["GetProducts"] == 2


def test_lifecycles_and_regions() -> None:
    book = PriceBook(None, clients=lambda s, r: None, enabled=False)
    assert "OPTFLEET_PRICING=off" in book.price("c6i.large", "spot", "us-east-1a").error
    assert "lifecycle" in book.price("c6i.large", "capacity-block", "us-east-1a").error
    assert region_of_zone("eu-west-1b") == "eu-west-1"
    assert region_of_zone("us-east-1-bos-1a") == "us-east-1"


def test_an_unwritable_cache_falls_back_to_memory(pricing: PricingEmulator, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    book = PriceBook(blocked / "prices.json", clients=clients_for(pricing), clock=Clock())
    assert book.price("c6i.large", "on-demand", "us-east-1a").usd_per_hour == 0.085
    assert book.price("c6i.large", "on-demand", "us-east-1a").usd_per_hour == 0.085
    assert book.lookups == 1 and book.cache_path is None
