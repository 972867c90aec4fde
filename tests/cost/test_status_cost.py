"""`optfleet status` shows the spend, its split and the cap (moto's EC2, emulated prices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.pricing import PricingEmulator
from optfleet.cost.experiment_cost import experiment_cost
from optfleet.experiment_spec import SpecError, validate_spec
from tests.agent.helpers import Api
from tests.cli.conftest import MotoServer, run_cli
from tests.cost.conftest import TOKEN, create_experiment
from tests.cost.test_cost_cap import launch
from tests.support.server import RunningServer


def observe(
    api: Api, eid: str, instance_id: str, metadata: dict[str, object], **body: object
) -> None:
    suggestion = api.create_suggestion(eid, {"instance_id": instance_id})
    api.call(
        "POST",
        f"/experiments/{eid}/observations",
        json={
            "suggestion": suggestion["id"],
            "metadata": {"instance_id": instance_id, **metadata},
            **body,
        },
    )


def test_status_shows_spend_split_and_the_cap(
    server: RunningServer, moto: MotoServer, pricing: PricingEmulator, tmp_path: Path
) -> None:
    api = Api(server.url, TOKEN)
    eid = create_experiment(api, "cost-status", metadata={"max_cost_usd": 0.001})
    [instance] = launch(moto, eid, 1)
    done = {
        "instance_seconds": 10,
        "earlier_attempts_seconds": 4,
        "cost_usd": 10.0,
        "earlier_attempts_cost_usd": 4.0,
        "price_source": "on-demand",
    }
    observe(api, eid, instance, done, values=[{"value": 0.5}])
    observe(api, eid, instance, {"instance_seconds": 3, "cost_usd": 3.0}, failed=True)
    observe(
        api,
        eid,
        instance,
        {"instance_seconds": 2, "cost_unknown_reason": "no price"},
        values=[{"value": 0.7}],
    )
    api.create_suggestion(
        eid,
        {
            "instance_id": instance,
            "spent_earlier_s": 1,
            "spent_earlier_usd": 1.0,
            "spent_attempt_s": 2,
            "spent_attempt_usd": 2.0,
        },
    )
    env = {
        **moto.env,
        "AWS_ENDPOINT_URL_PRICING": pricing.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SIGOPT_API_URL": server.url,
        "SIGOPT_API_TOKEN": TOKEN,
    }
    launch(moto, "optfleet-control-cost", 1, key="Stack")
    result = run_cli(
        "status", "--experiment", eid, "--json", "--control-stack", "optfleet-control-cost", env=env
    )
    assert result.returncode == 0, result.stderr
    cost = result.json()["cost"]
    assert cost["fleet"]["usd"] > 0  # x9.costly: a dollar a second since launch
    assert cost["fleet_usd_per_hour"] == 3600.0
    assert cost["control_plane"]["usd"] > 0  # asked for: its instances, priced the same way
    assert cost["max_cost_usd"] == 0.001 and cost["cap_reached"] is True
    assert cost["in_progress"] == {"seconds": 3.0, "usd": 3.0}
    assert cost["evaluating"]["seconds"] == 6 + 2 + 3  # own attempts + the open one
    assert cost["evaluating"]["usd"] is None  # one observation's price was unknown
    assert cost["wasted"]["failed"] == {"seconds": 3.0, "usd": 3.0}
    assert cost["wasted"]["interrupted"] == {"seconds": 4.0, "usd": 4.0}
    assert [o["cost_usd"] for o in cost["observations"]] == [10.0, 3.0, None]
    assert [o["cumulative_usd"] for o in cost["observations"]] == [10.0, 13.0, None]
    text = run_cli("status", "--experiment", eid, env=env)
    assert text.returncode == 0, text.stderr
    assert "cost cap $0.0010 reached" in text.stdout
    assert "the cap stopped the experiment" in text.stdout


def test_split_without_ec2_keeps_idle_unknown() -> None:
    observations = [
        {
            "id": "1",
            "suggestion": "1",
            "failed": False,
            "values": [{"value": 1.0}],
            "metadata": {"instance_seconds": 5, "cost_usd": 0.5},
        },
    ]
    cost = experiment_cost(None, observations, [], {"metadata": {}})
    assert cost.idle_booting is None
    assert cost.evaluating.usd == 0.5
    assert cost.as_json()["fleet"] is None
    assert not cost.cap_reached


def test_experiment_files_carry_the_cap_in_metadata() -> None:
    spec = {
        "name": "capped",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        "max_cost_usd": 25,
        "metadata": {"team": "ml"},
    }
    assert validate_spec(dict(spec))["metadata"] == {"team": "ml", "max_cost_usd": 25}
    with pytest.raises(SpecError, match=r"max_cost_usd: expected a positive number .* got -1"):
        validate_spec({**spec, "max_cost_usd": -1})
