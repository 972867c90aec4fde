"""An AWS Budget on the experiment's cost allocation tag: a backstop that needs no optfleet.

It alerts by email when the experiment's actual cost passes 80 % and 100 % of ``max_cost_usd``.
AWS billing data lags by hours (typically 8-24), and the ``Experiment`` tag must be activated as
a cost allocation tag in the Billing console first (cost from before activation is not tagged),
so this is a late safety net, not the cap: the agents enforce the cap (docs/infra.md, Cost).
"""

from __future__ import annotations

from aws_cdk import aws_budgets as budgets
from constructs import Construct

ALERT_PERCENTAGES = (80, 100)


class ExperimentBudget(Construct):
    """A yearly cost budget filtered on ``user:Experiment$<id>`` with email alerts."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        experiment_id: str,
        limit_usd: float,
        email: str,
    ) -> None:
        super().__init__(scope, construct_id)
        subscriber = budgets.CfnBudget.SubscriberProperty(address=email, subscription_type="EMAIL")
        self.budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"optfleet-{experiment_id}",
                budget_type="COST",
                # An experiment is not periodic; a year is the longest period a budget has.
                time_unit="ANNUALLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=limit_usd, unit="USD"),
                cost_filters={"TagKeyValue": [f"user:Experiment${experiment_id}"]},
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        comparison_operator="GREATER_THAN",
                        notification_type="ACTUAL",
                        threshold=percentage,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[subscriber],
                )
                for percentage in ALERT_PERCENTAGES
            ],
        )
