"""Fixtures for the cost tests: a suggestion server, moto's server mode, the pricing emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulators.pricing import PricingEmulator, SimulatedPrice
from tests.agent.helpers import Api
from tests.cli.conftest import MotoServer
from tests.support.server import RunningServer

TOKEN = "cost-suite-token-8d1e4a"
# Simulated prices (USD per hour): round numbers so expected costs are easy to read.
PRICES = [
    SimulatedPrice("c6i.large", on_demand_usd=0.085, spot_usd=0.0312),
    SimulatedPrice("m7i.large", on_demand_usd=0.1008, spot_usd=0.0403),
    # An absurd price makes a few seconds of test fleet cost whole dollars.
    SimulatedPrice("x9.costly", on_demand_usd=3600.0, spot_usd=1800.0),
]


@pytest.fixture(scope="package")
def server() -> Iterator[RunningServer]:
    with RunningServer.start(token=TOKEN) as running:
        yield running


@pytest.fixture(scope="package")
def moto() -> Iterator[MotoServer]:
    running = MotoServer()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def pricing() -> Iterator[PricingEmulator]:
    with PricingEmulator(list(PRICES)) as emulator:
        yield emulator


def create_experiment(api: Api, name: str, **fields: object) -> str:
    """A one-parameter experiment with extra create fields; returns its id."""
    body = {
        "name": name,
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        **fields,
    }
    return str(api.call("POST", "/experiments", json=body)["id"])
