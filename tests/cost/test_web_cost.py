"""The experiment page shows each observation's cost and plots best value against spend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from optfleet.cost.experiment_cost import experiment_cost
from tests.agent.helpers import Api
from tests.cost.conftest import TOKEN, create_experiment
from tests.cost.test_status_cost import observe
from tests.support.ports import wait_until
from tests.support.server import RunningServer
from tests.web.conftest import Fleet, rendered_summary, sign_in

COSTS = [0.25, 0.5, 0.125]  # chronological; the third observation failed
# A successful observation whose earlier attempts have seconds but no recorded cost (a peer that
# does not stamp earlier_attempts_cost_usd): the page used to count them as $0, the CLI as unknown.
NO_EARLIER_COST = {"instance_seconds": 10, "earlier_attempts_seconds": 4, "cost_usd": 0.5}


@pytest.fixture(scope="module")
def costed(server: RunningServer) -> Fleet:
    api = Api(server.url, TOKEN)
    eid = create_experiment(api, "cost page")
    for n, cost in enumerate(COSTS):
        suggestion = api.create_suggestion(eid, {"instance_id": f"i-0webcost00000{n}"})
        body: dict[str, Any] = {
            "suggestion": suggestion["id"],
            "metadata": {"instance_id": f"i-0webcost00000{n}", "cost_usd": cost},
        }
        if n == 2:
            body["failed"] = True
        else:
            body["values"] = [{"value": 1.0 + n}]
        api.call("POST", f"/experiments/{eid}/observations", json=body)
    return Fleet(server=server, api=api, experiment_id=eid, other_token="")


@pytest.fixture(scope="module")
def unknown_earlier(server: RunningServer) -> Fleet:
    api = Api(server.url, TOKEN)
    eid = create_experiment(api, "cost page, earlier attempts unpriced")
    for n, metadata in enumerate([{"cost_usd": 0.25, "instance_seconds": 5}, NO_EARLIER_COST]):
        observe(api, eid, f"i-0webearly0000{n}", metadata, values=[{"value": 1.0 + n}])
    return Fleet(server=server, api=api, experiment_id=eid, other_token="")


@pytest.fixture()
def page(browser: Any, costed: Fleet) -> Iterator[Any]:
    context, page = sign_in(browser, costed)
    yield page
    context.close()


def test_cost_column_summary_and_cost_axis(page: Any, costed: Fleet) -> None:
    summary = rendered_summary(page, costed.page_url)
    assert "observations cost $0.8750 (wasted: failed $0.1250, earlier attempts $0.0000)" in summary
    page.click("[data-tab=history]")
    headers = page.locator("#history-table thead th").all_text_contents()
    assert headers[4] == "Cost (USD)"
    cells = page.locator("#history-table tbody td.cost").all_text_contents()
    assert [float(c) for c in cells] == list(reversed(COSTS))  # newest first
    page.click("[data-tab=analysis]")
    page.wait_for_selector("#app[data-plotted]", timeout=60_000)
    plotted = int(page.get_attribute("#app", "data-plotted") or "0")
    page.select_option("#history-x", "cost")
    wait_until(
        lambda: int(page.get_attribute("#app", "data-plotted") or "0") > plotted, 30, "replot"
    )
    xs = page.evaluate("document.getElementById('plot-history').data[1].x")
    title = page.evaluate("document.getElementById('plot-history').layout.xaxis.title.text")
    assert title == "cumulative cost (USD)"
    assert xs == [0.25, 0.75]  # best so far against what had been spent (failed one not drawn)


def test_an_unpriced_earlier_attempt_is_unknown_on_the_page_and_in_the_cli(
    page: Any, unknown_earlier: Fleet
) -> None:
    summary = rendered_summary(page, unknown_earlier.page_url)
    assert (
        "observations cost $0.7500 (wasted: failed $0.0000, earlier attempts unknown: "
        "1 observation's earlier attempts have no recorded cost)"
    ) in summary
    data = requests.get(
        f"{unknown_earlier.page_url}/data.json", auth=(TOKEN, ""), timeout=30
    ).json()["cost"]
    observations = unknown_earlier.api.observations(unknown_earlier.experiment_id)
    cli = experiment_cost(None, observations, [], {}).as_json()  # what `optfleet status` shows
    assert data["unknown_attempts"] == cli["wasted"]["unknown_attempts"] == 1
    assert data["earlier_attempts"] == cli["wasted"]["interrupted"] == {"seconds": 4.0, "usd": None}
    assert data["evaluating"] == cli["evaluating"] == {"seconds": 11.0, "usd": None}
    assert data["failed"] == cli["wasted"]["failed"] == {"seconds": 0.0, "usd": 0.0}
    assert data["total"] == {"seconds": 15.0, "usd": 0.75}
