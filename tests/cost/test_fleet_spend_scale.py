"""Fleet spend at scale: EC2 DescribeInstances calls per minute do not grow with the fleet.

200 simulated agents check the dollar cap every 8 s of a simulated clock (the fleet run's
evaluations take 6-10 s) against a real server on loopback that reads the same clock, and moto's
EC2 in server mode. The calls are counted at botocore (every DescribeInstances request sent).
Before this change each agent paged DescribeInstances before every suggestion: 200 agents would
send ~1,500 a minute; the limit EC2 refills is 20 a second (1,200 a minute) for the account.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from emulators.pricing import PricingEmulator
from suggestion_server.app import create_app
from tests.cli.conftest import MotoServer
from tests.cost.test_cost_cap import clients, launch
from tests.support.loopback import LoopbackApp
from worker_bootstrap.api_client import ApiClient
from worker_bootstrap.cost.cap import CostCap
from worker_bootstrap.cost.pricing import PriceBook

TOKEN = "fleet-spend-scale-token"
CHECK_EVERY_S = 8.0
START = 1_800_000_000.0


class SimClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> SimClock:
    return SimClock()


@pytest.fixture()
def served(tmp_path: Path, clock: SimClock) -> Iterator[LoopbackApp]:
    app = create_app(f"sqlite:///{tmp_path / 'spend.db'}", bootstrap_token=TOKEN, clock=clock)
    with LoopbackApp(app) as running:
        yield running


def counted_ec2(moto: MotoServer) -> tuple[Any, list[int]]:
    ec2 = moto.client("ec2")
    calls = [0]

    def count(**_kwargs: Any) -> None:
        calls[0] += 1

    ec2.meta.events.register("before-call.ec2.DescribeInstances", count)
    return ec2, calls


def run_fleet(
    agents: int, minutes: float, caps: list[CostCap], clock: SimClock, calls: list[int]
) -> float:
    """Advance the clock second by second; each agent checks every 8 s. Calls per minute."""
    rng = random.Random(7)
    due = [START + rng.uniform(0, CHECK_EVERY_S) for _ in range(agents)]
    experiment = {"metadata": {"max_cost_usd": 1e9}}
    before = calls[0]
    steps = int(minutes * 60)
    for _ in range(steps):
        clock.now += 1.0
        for n, cap in enumerate(caps):
            if due[n] <= clock.now:
                check = cap.check(experiment)
                assert check is not None and not check.reached
                assert check.instances == 5 and check.spend_usd > 0
                due[n] = clock.now + CHECK_EVERY_S
    return (calls[0] - before) / minutes


def make_caps(
    agents: int,
    eid: str,
    served: LoopbackApp | None,
    moto: MotoServer,
    pricing: Any,
    clock: SimClock,
) -> tuple[list[CostCap], list[int]]:
    ec2, calls = counted_ec2(moto)
    book = PriceBook(None, clients=clients(moto, pricing))
    session = requests.Session()
    caps = []
    for n in range(agents):
        request = None
        if served is not None:
            api = ApiClient(served.url, TOKEN, session=session)

            def request(method: str, path: str, body: Any, api: ApiClient = api) -> Any:
                return api.request(method, path, body=body, idempotent=method != "POST")

        caps.append(
            CostCap(
                eid,
                "us-east-1",
                book,
                setting=None,
                ec2=lambda: ec2,
                clock=clock,
                instance_id=f"i-{n:05d}",
                request=request,
            )
        )
    return caps, calls


def test_describe_instances_calls_per_minute_do_not_grow_with_the_fleet(
    served: LoopbackApp, moto: MotoServer, pricing: PricingEmulator, clock: SimClock
) -> None:
    api = requests.Session()
    api.auth = (TOKEN, "")
    body = {
        "name": "spend",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    }
    per_minute = {}
    for agents in (20, 200):
        eid = str(api.post(f"{served.url}/v1/experiments", json=body, timeout=30).json()["id"])
        launch(moto, eid, 5)
        caps, calls = make_caps(agents, eid, served, moto, pricing, clock)
        per_minute[agents] = run_fleet(agents, 5, caps, clock, calls)
    print(f"DescribeInstances calls per minute, shared figure: {per_minute}")
    # About one scan a minute per experiment (the figure's 60 s life plus jitter), 1 page each.
    assert per_minute[200] <= 1.2
    assert per_minute[200] <= per_minute[20] + 0.2  # O(1) in the fleet's size


def test_without_the_servers_figure_each_agent_measures_at_most_once_a_minute(
    moto: MotoServer, pricing: PricingEmulator, clock: SimClock
) -> None:
    """Against a plain SigOpt server the agents fall back to their own scans, each cached."""
    eid = "plain-server-fleet"
    launch(moto, eid, 5)
    caps, calls = make_caps(50, eid, None, moto, pricing, clock)
    per_minute = run_fleet(50, 3, caps, clock, calls)
    print(f"DescribeInstances calls per minute, per-agent fallback (50 agents): {per_minute:.1f}")
    assert per_minute <= 50 * 1.0 + 1  # at most once a minute per agent, not every 8 s
    assert per_minute >= 50 * 0.6  # and the fallback really measures (the test can fail)


def test_an_ec2_outage_keeps_the_last_figure_and_never_stops_the_agent(
    served: LoopbackApp, moto: MotoServer, pricing: PricingEmulator, clock: SimClock
) -> None:
    api = requests.Session()
    api.auth = (TOKEN, "")
    body = {
        "name": "outage",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    }
    eid = str(api.post(f"{served.url}/v1/experiments", json=body, timeout=30).json()["id"])
    launch(moto, eid, 5)
    caps, _calls = make_caps(3, eid, served, moto, pricing, clock)
    experiment = {"metadata": {"max_cost_usd": 1e9}}
    first = caps[0].check(experiment)
    assert first is not None and first.age_s == 0.0
    ec2 = caps[0]._ec2() if caps[0]._ec2 else None  # the counted moto client
    assert ec2 is not None

    def throttled(**_kwargs: Any) -> None:
        error = {"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."}}
        raise ClientError(error, "DescribeInstances")

    ec2.meta.events.register("before-call.ec2.DescribeInstances", throttled)
    for _ in range(30):  # ten simulated minutes of throttling
        clock.now += 20
        for cap in caps:
            check = cap.check(experiment)
            assert check is not None and not check.reached
            # The last figure, extrapolated with the running instances' price.
            assert check.spend_usd > first.spend_usd
    assert max(cap.check(experiment).age_s for cap in caps) >= 500  # type: ignore[union-attr]
    ec2.meta.events.unregister("before-call.ec2.DescribeInstances", throttled)
    clock.now += 120
    fresh = caps[1].check(experiment)
    assert fresh is not None and fresh.age_s < 1.0
