"""The fleet's dollar cap: passed to the agents, price permissions, an optional AWS Budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import SettingsError, load_settings
from infra.user_data import agent_settings
from tests.infra.support import Synthesized, synth

CONTEXT = {
    "experiment_id": "cost7",
    "max_cost_usd": "250",
    "budget_alert_email": "ml-team@example.com",
}


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(CONTEXT, tmp_path_factory.mktemp("capped"))


def test_budget_on_the_experiment_tag_with_email_alerts(capped: Synthesized) -> None:
    budget = capped.one("AWS::Budgets::Budget")["Properties"]
    data = budget["Budget"]
    assert data["BudgetLimit"] == {"Amount": 250, "Unit": "USD"}
    assert data["BudgetType"] == "COST"
    assert data["CostFilters"] == {"TagKeyValue": ["user:Experiment$cost7"]}
    thresholds = [n["Notification"]["Threshold"] for n in budget["NotificationsWithSubscribers"]]
    assert thresholds == [80, 100]
    for notification in budget["NotificationsWithSubscribers"]:
        assert notification["Subscribers"] == [
            {"Address": "ml-team@example.com", "SubscriptionType": "EMAIL"}
        ]


def test_agents_may_read_prices(capped: Synthesized) -> None:
    actions: set[str] = set()
    for policy in capped.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    assert {"pricing:GetProducts", "ec2:DescribeSpotPriceHistory"} <= actions


def test_cap_reaches_the_agent_env_and_bad_values_are_named(tmp_path: Path) -> None:
    settings = load_settings(CONTEXT, cwd=tmp_path)
    assert agent_settings(settings, region="eu-west-1")["OPTFLEET_MAX_COST_USD"] == "250"
    assert "OPTFLEET_MAX_COST_USD" not in agent_settings(
        load_settings({"experiment_id": "cost7"}, cwd=tmp_path), region="eu-west-1"
    )
    with pytest.raises(
        SettingsError, match="'max_cost_usd': expected a number of US dollars above 0"
    ):
        load_settings({**CONTEXT, "max_cost_usd": "-5"}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="'budget_alert_email': expected an email address"):
        load_settings({**CONTEXT, "budget_alert_email": "nobody"}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="needs max_cost_usd"):
        load_settings({"experiment_id": "cost7", "budget_alert_email": "a@b.io"}, cwd=tmp_path)
